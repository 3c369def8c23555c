"""Under valgrind: a graceful stop joins every thread and frees every byte."""

import shutil

import pytest

from harness import SHUTDOWN_NOTICE, Server


@pytest.mark.needs("graceful_shutdown")
@pytest.mark.builds("linux")
def test_ctrl_c_leaves_no_leak_and_no_memory_error_under_valgrind(target, tmp_path, connections):
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is not installed: run 'make deps'")
    report = tmp_path / "valgrind.txt"
    wrapper = [
        "valgrind",
        "--quiet",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--error-exitcode=99",
        f"--log-file={report}",
    ]
    server = Server(target, prefix=wrapper, slowdown=20)
    try:
        clients = [server.connect() for _ in range(10)]
        connections.extend(clients)
        for index, client in enumerate(clients):
            client.round_trip(f"line {index}".encode())
        clients[0].send(b"exit\n")
        clients[0].expect_eof()
        server.interrupt()
        for client in clients[1:]:
            client.expect(SHUTDOWN_NOTICE)
        code = server.wait(60)
    finally:
        server.stop()
    details = report.read_text() if report.exists() else "(no valgrind report)"
    assert code == 0, f"under valgrind the server exited {code} (99: valgrind found errors or leaks)\n{details}"
