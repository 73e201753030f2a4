"""A stand-in for `make up` in the runner's fixture README: serves /healthz and
an OpenAI-shaped /v1/chat/completions on README_TEST_UP_URL, keeps one child
process (as the real stack keeps engines), and on SIGINT stops the child and
exits, as a clean `flightdeck up` must (with --leak it does not: the runner
must then report the process left behind)."""

import json
import os
import subprocess
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self.reply(404, {"error": {"message": "not found"}})
            return
        said = request["messages"][-1]["content"]
        self.reply(200, {
            "id": "chatcmpl-fixture", "object": "chat.completion", "created": 0,
            "model": request.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"fixture heard: {said}"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
        })

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_up: " + fmt % args + "\n")


def main():
    url = urllib.parse.urlparse(os.environ["README_TEST_UP_URL"])
    # --leak: the child ignores SIGINT and is not stopped (a broken `up`).
    leak = "--leak" in sys.argv[1:]
    child = subprocess.Popen(["sleep", "600"], start_new_session=leak)
    server = ThreadingHTTPServer((url.hostname, url.port), Handler)
    print(f"fake_up: serving on {url.geturl()} (child pid {child.pid})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("fake_up: SIGINT, stopping", flush=True)
    finally:
        server.server_close()
        if not leak:
            child.terminate()
            child.wait()


if __name__ == "__main__":
    main()
