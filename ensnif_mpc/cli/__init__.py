"""The ``ensnif`` command line: click commands over the client SDK and the servers."""
