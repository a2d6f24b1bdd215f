"""The AMI wire protocol, without I/O: frames, names, AsyncAGI results and environment."""
