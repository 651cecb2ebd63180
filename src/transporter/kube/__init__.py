"""Everything that talks to a Kubernetes API server: the only package that imports kubernetes."""
