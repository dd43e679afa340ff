"""One command on an open SSH connection, run in a session channel of its own: its output
read as it arrives (one wait for both streams, no thread per stream and no polling, unlike
Fabric's ``run``, which costs the controller twice the CPU per command), a time limit, and
the command's exit status."""

import codecs
import select
import time

import invoke

CHUNK = 32768


def run(connection, command, timeout=None, stdin=None, out=None):
    """Run ``command`` on ``connection`` (a Fabric Connection, opened again if it dropped)
    and return an invoke Result: stdout and stderr as UTF-8 text, ``exited`` -1 when the
    connection ended before the command's exit status came. ``stdin`` (text), if given, is
    the command's input, then end of file. With ``out`` (a text stream), stdout and stderr
    are written there as they arrive instead of into the Result. After ``timeout`` seconds
    the command's channel is closed and invoke's CommandTimedOut raised, with what it
    printed so far."""
    connection.open()
    channel = connection.create_session()
    sink = Output(out)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        channel.exec_command(command)
        if stdin is not None:
            channel.sendall(stdin.encode())
            channel.shutdown_write()
        finished = read_to_end(channel, deadline, sink) and wait_status(channel, deadline)
        result = sink.result(command, channel.exit_status if finished else -1)
    finally:
        channel.close()
    if not finished:
        raise invoke.exceptions.CommandTimedOut(result, timeout)
    return result


def read_to_end(channel, deadline, sink):
    """Hand what the command prints to ``sink`` until the channel's end of file; False if
    ``deadline`` (a monotonic time, or None) passes first."""
    while True:
        ended = channel.eof_received or channel.closed
        while channel.recv_ready():
            sink.add(channel.recv(CHUNK), stderr=False)
        while channel.recv_stderr_ready():
            sink.add(channel.recv_stderr(CHUNK), stderr=True)
        if ended:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        select.select([channel], [], [], left)


def wait_status(channel, deadline):
    """Wait for the command's exit status (or the channel's close, which leaves -1); False
    if ``deadline`` passes first."""
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    return channel.status_event.wait(left)


class Output:
    """What a command printed: kept per stream, or written to ``out`` as it arrives."""

    def __init__(self, out=None):
        self.out = out
        self.kept = {False: [], True: []}
        self.decoders = {stderr: codecs.getincrementaldecoder("utf-8")("replace")
                         for stderr in (False, True)}

    def add(self, data, stderr):
        if self.out is None:
            self.kept[stderr].append(data)
            return
        text = self.decoders[stderr].decode(data)
        if text:
            self.out.write(text)
            self.out.flush()

    def result(self, command, exited):
        """The invoke Result of the command (its output empty when it went to ``out``)."""
        stdout, stderr = (b"".join(self.kept[which]).decode("utf-8", "replace")
                          for which in (False, True))
        return invoke.runners.Result(stdout=stdout, stderr=stderr, exited=exited,
                                     command=command)
