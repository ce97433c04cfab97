#!/usr/bin/python3
"""Stand-in HTTP boot server for bench/boot.sh until kiln serves HTTP boot
itself: Python's threading http.server on ADDR:PORT serving DIR, with a
listen backlog of 1024 (the default of 5 would turn a boot storm into SYN
retransmissions) and no per-request log lines."""
import functools
import http.server
import sys


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
srv = Server((addr, port), functools.partial(Handler, directory=root))
print("httpd ready", flush=True)
srv.serve_forever()
