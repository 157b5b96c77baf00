"""The container side of sleepkit: the switching workload and what it imports.

Everything in this package runs inside any vLLM image (or on the host), so it imports only the
standard library, psutil and, when present, the NVML bindings (tests/test_workload_imports.py checks).
It is the only part of the kit copied into the image: changing it changes the image tag.
"""
