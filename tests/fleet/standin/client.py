"""bin/pulumi in server mode: relay argv, cwd and environment to the stand-in server.

Run with ``python -S -I`` and nothing but the standard library, so it starts in milliseconds.
"""

import json
import os
import socket
import sys


def main() -> int:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(os.environ["STANDIN_SOCKET"])
    request = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
    connection.sendall(json.dumps(request).encode() + b"\n")
    streams = {b"o": sys.stdout, b"e": sys.stderr}
    with connection.makefile("rb") as answers:
        for line in answers:
            kind, _, payload = line.rstrip(b"\n").partition(b" ")
            if kind == b"x":
                return int(payload)
            stream = streams[kind]
            stream.write(json.loads(payload))
            stream.flush()
    sys.stderr.write("error: the stand-in server closed the connection\n")
    return 255


if __name__ == "__main__":
    sys.exit(main())
