#!/bin/sh
# sshd for the docker CLI's ssh:// transport (`docker system dial-stdio` runs
# here; GatewayPorts for mux's proxy tunnel, see mux/egress/tunnel.py), then the
# engine itself. --cgroup-parent keeps its containers' cgroups apart from the
# outer engine's.
set -e
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
ssh-keygen -A >/dev/null
/usr/sbin/sshd -p 22 -o PasswordAuthentication=no -o AllowTcpForwarding=yes -o GatewayPorts=clientspecified
exec dockerd --cgroup-parent=/mux-remote-engine >/var/log/dockerd.log 2>&1
