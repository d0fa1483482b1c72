"""The fault and hostile-input suite (issue 5): real servers, real processes, real faults."""
