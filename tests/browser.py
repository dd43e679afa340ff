"""A real browser for the tests: Debian's headless chromium, driven over its DevTools
protocol on a pipe (--remote-debugging-pipe: no listening port that another local user
could reach), its profile in a temporary directory, ended by its PID."""

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

CHROMIUM = "chromium"
# The pipe's ends as chromium expects them: it reads commands on 3, answers on 4.
COMMANDS_FD, ANSWERS_FD = 3, 4
# What chromium answers an evaluation that a navigation of the page cut short.
NAVIGATING = ("Inspected target navigated or closed", "Execution context was destroyed",
              "Cannot find context with specified id")


class PageNavigating(RuntimeError):
    """The page was navigating while a script ran in it; ask again once it has loaded."""


def unavailable_reason():
    """Why no browser test can run here (None when chromium is installed)."""
    return None if shutil.which(CHROMIUM) else f"{CHROMIUM} is not installed (apt-get " \
                                                   f"install {CHROMIUM})"


class Browser:
    """One headless chromium with one page; ``with Browser() as browser: ...``."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="ray-tasks-chromium-")
        commands_read, self._commands = _high_pipe()
        self._answers, answers_write = _high_pipe()

        def on_fds_3_and_4():
            os.dup2(commands_read, COMMANDS_FD)
            os.dup2(answers_write, ANSWERS_FD)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(COMMANDS_FD, ANSWERS_FD), preexec_fn=on_fds_3_and_4,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(answers_write)
        self._buffer, self._next_id, self.session = b"", 0, None

    def __enter__(self):
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        return self

    def __exit__(self, *exc_info):
        self.process.kill()
        self.process.wait()
        os.close(self._commands)
        os.close(self._answers)
        shutil.rmtree(self.profile, ignore_errors=True)

    def send(self, method, timeout=60, **params):
        """Send one DevTools command (to the page once attached); returns its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read(time.monotonic() + timeout)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    error = f"{method}: {answer['error']}"
                    if any(cause in error for cause in NAVIGATING):
                        raise PageNavigating(error)
                    raise RuntimeError(error)
                return answer["result"]

    def _read(self, deadline):
        """The next message from chromium (answers and events alike)."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._answers, 65536)
            if not chunk:
                raise RuntimeError("chromium ended")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url):
        self.send("Page.navigate", url=url)

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")

    def wait_for(self, expression, timeout=120):
        """Wait until ``expression`` is true in the page (a navigation in between, as after
        the log-in, is waited out); returns the page's text."""
        deadline = time.monotonic() + timeout
        while not self._holds(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {expression}; it shows:\n"
                                     + str(self.evaluate("document.body.innerText")))
            time.sleep(0.5)
        return self.evaluate("document.body.innerText")

    def _holds(self, expression):
        try:
            return self.evaluate(expression)
        except PageNavigating:
            return False

    def type_text(self, text):
        """Type ``text`` into the focused field, as from the keyboard."""
        self.send("Input.insertText", text=text)


def _high_pipe():
    """A pipe whose ends are above 4, so that placing them on 3 and 4 overwrites neither."""
    ends = os.pipe()
    high = tuple(fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 10) for end in ends)
    for end in ends:
        os.close(end)
    return high
