"""What this machine offers: CPU, memory, disk and GPUs, and the job capacity that follows from them."""
