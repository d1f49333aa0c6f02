"""gunicorn config file that keeps a local ``azmlinfsrv`` on 127.0.0.1.

``azmlinfsrv`` always binds 0.0.0.0 and has no host flag. Passed as
``GUNICORN_CMD_ARGS="--config harness/gunicorn_loopback.py"`` (see ``harness.server``), this hook rewrites
every bind address to loopback, keeping its port, before gunicorn opens any socket.
"""

control_socket_disable = True  # gunicorn 27 would otherwise create a control socket under $HOME/.gunicorn


def on_starting(server):
    ports = [address.rsplit(":", 1)[-1] for address in server.cfg.bind]
    server.cfg.set("bind", [f"127.0.0.1:{port}" for port in ports])
