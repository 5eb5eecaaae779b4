"""OpenCL algorithms, one module each, each beside its kernel file in kernels_cl/."""
