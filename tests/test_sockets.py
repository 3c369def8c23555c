"""The server's own sockets: what they are set to, read from the outside through /proc (Linux build)."""

import os

import pytest

from harness import CourseFailure

O_CLOEXEC = 0o2000000  # the flag in /proc/PID/fdinfo/FD's "flags:" field (octal), as in <fcntl.h>


def socket_descriptors(pid):
    """{descriptor: flags} for every socket the process holds."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                flags = next(line for line in info if line.startswith("flags:"))
        except (FileNotFoundError, StopIteration):
            continue  # closed while we looked
        found[int(fd)] = int(flags.split()[1], 8)
    return found


def not_inherited(sockets):
    """The descriptors among {descriptor: flags} that lack close-on-exec."""
    return sorted(fd for fd, flags in sockets.items() if not flags & O_CLOEXEC)


# A socket without close-on-exec stays open in any program the server (or a library in it) starts: the
# listening port then outlives the server, and a client's connection outlives the server's close.
@pytest.mark.any_protocol
@pytest.mark.builds("linux")
def test_listening_socket_is_not_inherited_by_started_programs(server):
    sockets = socket_descriptors(server.process.pid)
    assert sockets, f"the server holds no socket after 'listening on'\n{server.log()}"
    inherited = not_inherited(sockets)
    if inherited:
        hint = "open the listening socket with sock_open(), which makes it close-on-exec (close_on_exec())"
        raise CourseFailure(f"the listening socket ({inherited}) lacks close-on-exec\nhint: {hint}\n{server.log()}",
                            hint=hint)


@pytest.mark.builds("linux")
def test_accepted_sockets_are_not_inherited_by_started_programs(server, connections):
    client = server.connect()
    connections.append(client)
    client.round_trip(b"hello")  # accepted, and served: its socket exists in the server now
    sockets = socket_descriptors(server.process.pid)
    assert len(sockets) >= 2, f"expected the listener and the client's socket, found {sockets}\n{server.log()}"
    inherited = not_inherited(sockets)
    if inherited:
        hint = "accept with sock_accept(), which makes each accepted socket close-on-exec (close_on_exec())"
        raise CourseFailure(f"sockets {inherited} of {sorted(sockets)} lack close-on-exec\nhint: {hint}\n"
                            f"{server.log()}", hint=hint)
