"""A real PostgreSQL server for the tests, started by them: initdb in a
temporary directory, then postgres on a Unix socket in that directory (no
TCP port), run as an unprivileged system user because PostgreSQL refuses
to run as root.  Local connections need a password (scram-sha-256), so that
the tests go through the password path the service uses in production.

    srv = PgServer()            # initdb and start
    uri = srv.create_database() # a fresh database; its libpq URI (no password)
    srv.password                # the password of user t2i
    srv.restart()               # what a restart does to the service
    srv.stop()
"""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time

import psycopg2

PG_BIN = "/usr/lib/postgresql/15/bin"
USER = "t2i"


def server_user():
    """The system user the server runs as: Debian's postgres, else nobody."""
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise AssertionError("no postgres or nobody user to run PostgreSQL as")


class PgServer:
    def __init__(self, settings=None):
        self.user = server_user()
        # Not under pytest's tmp_path: its parents are mode 0700 and the
        # server's user must reach its directory.  The socket path must stay
        # short (107 bytes).
        self.dir = tempfile.mkdtemp(prefix="t2i-pg-")
        os.chmod(self.dir, 0o700)
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.password = secrets.token_hex(12)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._as_server(os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", USER,
                        "--pwfile", pwfile, "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
        os.unlink(pwfile)
        conf = {"listen_addresses": "''", "unix_socket_directories": f"'{self.dir}'",
                # A test server: the machine does not crash, the server does
                # (restart() stops it as a crash would): WAL written to the OS
                # survives that without fsync.  synchronous_commit stays on, or a
                # crash would lose transactions already reported committed.
                "fsync": "off", "full_page_writes": "off",
                "max_connections": "200", "log_min_messages": "warning"}
        conf.update(settings or {})
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self.start()

    def _as_server(self, *argv, check=True):
        cp = subprocess.run(["runuser", "-u", self.user.pw_name, "--", *argv],
                            capture_output=True, text=True, timeout=120, cwd=self.dir)
        if check:
            assert cp.returncode == 0, (argv, cp.stdout[-2000:], cp.stderr[-2000:])
        return cp

    def start(self):
        self._as_server(os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log,
                        "-w", "-t", "60", "start")

    def stop(self, mode="fast"):
        self._as_server(os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", mode,
                        "-w", "-t", "60", "stop", check=False)

    def restart(self, down_s=0.0):
        """Stops the server (immediately: connections are cut as in a crash),
        waits down_s, starts it again."""
        self.stop("immediate")
        if down_s:
            time.sleep(down_s)
        self.start()

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def uri(self, dbname):
        return f"postgresql://{USER}@/{dbname}?host={self.dir}"

    def connect(self, dbname="postgres"):
        return psycopg2.connect(host=self.dir, user=USER, password=self.password,
                                dbname=dbname)

    def create_database(self):
        name = "t2i_" + secrets.token_hex(6)
        con = self.connect()
        try:
            con.autocommit = True
            con.cursor().execute(f"CREATE DATABASE {name}")
        finally:
            con.close()
        return name
