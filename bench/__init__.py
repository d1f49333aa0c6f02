"""``make bench``: the template against the server's own ceiling and the sample-style script, on real servers."""
