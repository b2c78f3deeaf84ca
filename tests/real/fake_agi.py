"""A scripted FastAGI server for testing the dialplan snippet without the recorder daemon.

``FakeAgi(port, script)`` accepts connections on 127.0.0.1:port; for each, it reads the AGI
environment, then runs ``script(env, agi)`` where ``agi(command) -> str`` sends one AGI
command and returns Asterisk's ``200 result=...`` line.  Sessions are recorded in ``sessions``.
The snippet's quick decision before answer (``.../decide``) is left unanswered (the snippet then
answers and runs the consent session) unless ``answers_decide``.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable

Script = Callable[[dict[str, str], Callable[[str], str]], None]


class FakeAgi:
    def __init__(self, port: int, script: Script, answers_decide: bool = False) -> None:
        self.sessions: list[dict[str, object]] = []
        self.decides: list[dict[str, str]] = []  # quick-decision requests left unanswered
        self.answers_decide = answers_decide  # False: ``script`` sees only the consent sessions
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(30)
                env: dict[str, str] = {}
                while True:
                    line = self.rfile.readline().decode("utf-8", "replace").rstrip("\n")
                    if not line:
                        break
                    key, _, value = line.partition(": ")
                    env[key] = value
                if env.get("agi_network_script") == "decide" and not outer.answers_decide:
                    outer.decides.append(env)  # the snippet's quick decision: not final here
                    return
                replies: list[str] = []

                def agi(command: str) -> str:
                    self.wfile.write(command.encode() + b"\n")
                    reply = self.rfile.readline().decode("utf-8", "replace").strip()
                    replies.append(reply)
                    return reply

                session: dict[str, object] = {"env": env, "replies": replies}
                outer.sessions.append(session)
                try:
                    script(env, agi)
                except (TimeoutError, OSError) as exc:
                    session["error"] = repr(exc)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def __enter__(self) -> FakeAgi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
