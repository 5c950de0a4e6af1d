"""The workflow engine: claims, the run loop, attempts, policies and in-process signals."""
