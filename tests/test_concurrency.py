"""Many clients: lesson 01 serves one at a time on purpose; 02 and later serve them all at once."""

import pytest


@pytest.mark.needs_not("concurrent")
def test_second_client_waits_until_the_first_leaves(server, connections, target):
    """Lesson 01's limitation, shown on purpose: this is what lesson 02 fixes."""
    first = server.connect()
    second = server.connect()
    connections.extend([first, second])
    first.round_trip(b"first")
    second.send(b"second\n")
    second.expect_silence(0.5, hint="lesson 01 serves one client at a time: the second must wait")
    first.send(b"exit\n")
    first.expect_eof()
    second.expect(target.stage.reply(b"second"), hint="once the first client leaves, the second is served")


@pytest.mark.needs("concurrent")
def test_second_client_is_served_while_the_first_stays(server, connections):
    first = server.connect()
    second = server.connect()
    connections.extend([first, second])
    first.round_trip(b"first")
    second.round_trip(b"second while the first is still connected")
    first.round_trip(b"first again")


@pytest.mark.needs("concurrent")
def test_fifty_interleaved_clients_each_get_only_their_own_replies(server, connections, target):
    """With an echo (lessons 02 and 03) a reply that went to the wrong client shows. Where every reply is
    the same text (final/) this checks only that each client gets one reply per line, neither more nor less."""
    clients = [server.connect() for _ in range(50)]
    connections.extend(clients)
    for round_number in range(5):
        for index, client in enumerate(clients):
            client.send(f"client {index} line {round_number}\n".encode())
        for index, client in enumerate(clients):
            client.expect(
                target.stage.reply(f"client {index} line {round_number}".encode()),
                step=f"round {round_number}: wait for client {index}'s reply",
                hint="each thread must use only its own socket and its own buffer",
            )
    for client in clients:
        client.send(b"exit\n")
        client.expect_eof()
