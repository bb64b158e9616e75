#!/usr/bin/env bash
# Start a throwaway OpenSSH sshd on 127.0.0.1 for the ssh tests (tests marked @pytest.mark.ssh).
#
#   eval "$(bash tests/ssh/start_sshd.sh [DIR])"     # exports KDBENCH_TEST_SSH_CONFIG and ..._SSHD_PID
#   ssh -F "$KDBENCH_TEST_SSH_CONFIG" kdbench-test true
#   kill "$KDBENCH_TEST_SSHD_PID"                    # stop it
#
# Runs as the current user on a free port with a fresh host key and a fresh client key authorised
# only in DIR (a new temp dir by default); nothing outside DIR is touched except /run/sshd, which
# sshd insists on and which is created when this user may. Needs openssh-server and
# openssh-client (apt-get install -y openssh-server openssh-client).
set -euo pipefail

DIR="${1:-$(mktemp -d /tmp/kdbench-sshd.XXXXXX)}"
mkdir -p "$DIR"
chmod 700 "$DIR"
DIR="$(cd "$DIR" && pwd)"

SSHD="$(command -v sshd || true)"
[ -n "$SSHD" ] || SSHD=/usr/sbin/sshd
if [ ! -x "$SSHD" ]; then
    echo "start_sshd.sh: sshd not found; apt-get install -y openssh-server" >&2
    exit 1
fi
[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || true

rm -f "$DIR/host_key" "$DIR/host_key.pub" "$DIR/client_key" "$DIR/client_key.pub"
ssh-keygen -q -t ed25519 -N '' -C kdbench-test-host -f "$DIR/host_key"
ssh-keygen -q -t ed25519 -N '' -C kdbench-test-client -f "$DIR/client_key"
cp "$DIR/client_key.pub" "$DIR/authorized_keys"
chmod 600 "$DIR/authorized_keys" "$DIR/host_key" "$DIR/client_key"

PY="$(command -v python3 || command -v python)"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
USER_NAME="$(id -un)"

cat > "$DIR/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
AllowUsers $USER_NAME
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
CONF

cat > "$DIR/ssh_config" <<CONF
Host kdbench-test
    HostName 127.0.0.1
    Port $PORT
    User $USER_NAME
    IdentityFile $DIR/client_key
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    BatchMode yes
CONF

"$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log"

for _ in $(seq 1 50); do
    if ssh -F "$DIR/ssh_config" kdbench-test true 2>/dev/null; then
        echo "export KDBENCH_TEST_SSH_CONFIG=$DIR/ssh_config"
        echo "export KDBENCH_TEST_SSHD_PID=$(cat "$DIR/sshd.pid")"
        exit 0
    fi
    sleep 0.2
done
echo "start_sshd.sh: sshd on 127.0.0.1:$PORT did not accept the test key; log:" >&2
cat "$DIR/sshd.log" >&2 || true
[ -f "$DIR/sshd.pid" ] && kill "$(cat "$DIR/sshd.pid")" 2>/dev/null || true
exit 1
