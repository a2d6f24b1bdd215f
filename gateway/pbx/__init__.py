"""The AMI session to each PBX and the AsyncAGI channels it carries."""
