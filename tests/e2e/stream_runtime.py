"""A custom runtime (stdlib only, raw sockets) that answers in the Runtime API's streaming
response mode; the e2e streaming tests zip it as a function's `runtime.py`.

The event says what to do, step by step:
  {"steps": [{"chunk": "text"}, {"wait": "flag-name"}, {"bytes": 1048576}, {"hang": true}],
   "error": {"type": "...", "body": {...}},   # end with error trailers
   "content_type": "...", "buffered": true}    # answer with a plain (buffered) POST
Behind a function URL the event is an HTTP event: its JSON body holds those steps.
`wait` blocks until the file <task root>/<flag-name> exists: the test creates it once it
has received what came before, which proves the stream reached it before the function
went on. Not a handler model: just enough Runtime API to drive the server.
"""

import base64
import json
import os
import socket
import sys
import time

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
ROOT = os.environ["LAMBDA_TASK_ROOT"]
API = "/2018-06-01/runtime/invocation"


def connect():
    sock = socket.create_connection((HOST, int(PORT)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, sock.makefile("rb")


def read_response(stream):
    status = int(stream.readline().split()[1])
    headers = {}
    while True:
        line = stream.readline()
        if line in (b"\r\n", b""):
            break
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def stream_response(request_id, event):
    sock, reader = connect()
    head = (
        f"POST {API}/{request_id}/response HTTP/1.1\r\nHost: runtime\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
        "Transfer-Encoding: chunked\r\n"
        f"Content-Type: {event.get('content_type', 'application/octet-stream')}\r\n"
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
        "\r\n"
    )
    sock.sendall(head.encode())
    for step in event.get("steps", []):
        if "chunk" in step:
            sock.sendall(chunk(step["chunk"].encode()))
        elif "prelude" in step:  # an HTTP integration response's prelude and delimiter
            sock.sendall(chunk(json.dumps(step["prelude"]).encode() + b"\0" * 8))
        elif "bytes" in step:
            left = step["bytes"]
            while left > 0:
                size = min(left, 65536)
                sock.sendall(chunk(b"x" * size))
                left -= size
        elif "wait" in step:
            flag = os.path.join(ROOT, step["wait"])
            while not os.path.exists(flag):
                time.sleep(0.005)
        elif "hang" in step:
            time.sleep(3600)
    trailers = b""
    if "error" in event:
        error = event["error"]
        body = base64.b64encode(json.dumps(error["body"]).encode())
        trailers = (
            b"Lambda-Runtime-Function-Error-Type: " + error["type"].encode() + b"\r\n"
            b"Lambda-Runtime-Function-Error-Body: " + body + b"\r\n"
        )
    sock.sendall(b"0\r\n" + trailers + b"\r\n")
    status, _, answer = read_response(reader)
    print(f"stream answered {status} {answer.decode()}", flush=True)
    sock.close()


def main():
    sock, reader = connect()
    while True:
        sock.sendall(f"GET {API}/next HTTP/1.1\r\nHost: runtime\r\n\r\n".encode())
        _, headers, body = read_response(reader)
        request_id = headers["lambda-runtime-aws-request-id"]
        event = json.loads(body)
        if "steps" not in event and isinstance(event.get("body"), str):
            event = json.loads(event["body"])
        if event.get("buffered"):
            payload = json.dumps({"buffered": True}).encode()
            head = (
                f"POST {API}/{request_id}/response HTTP/1.1\r\nHost: runtime\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            )
            sock.sendall(head.encode() + payload)
            read_response(reader)
            continue
        stream_response(request_id, event)


if __name__ == "__main__":
    sys.exit(main())
