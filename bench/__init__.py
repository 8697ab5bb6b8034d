"""`make bench`: speed and memory of pneumocxr measured beside the classic pipeline and the hardware ceiling."""
