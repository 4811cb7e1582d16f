#!/usr/bin/env python3
r"""The query round trip hop by hop, from a system-wide trace of query_bench's sequential phase.

    perf record -a -e syscalls:sys_enter_sendto -e syscalls:sys_exit_recvfrom -o hops.data -- \
        build/bench/query_bench --only levee --requests 8000      (or --only raw-polling)
    bench/query_hops.py hops.data

Each client send (the query_bench parent process) is matched with the server's receive and
send on, the satellite's receive and answer, the server's receive and send back and the
client's receive, on whichever threads do them (c = client, s = server, a = satellite: with
--only raw-polling, the relay and the backend); it prints the median and spread of each
wire hop and each node's step (receive -> send), queries 500 to 8,500. Tracing adds about
1 us per traced call, to Levee and to the relay alike (bench/RESULTS.md, issue 13).
"""
import subprocess, sys, re, statistics

if len(sys.argv) != 2:
    sys.exit(__doc__)
data = sys.argv[1]
out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,tid,time,event,trace"],
                     capture_output=True, text=True).stdout
ev = []
for line in out.splitlines():
    m = re.match(r"\s*(\S+)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
    if not m: continue
    comm, pid, tid, t, name, rest = m.groups()
    t = float(t) * 1e6
    if "sendto" in name:
        ev.append((t, int(pid), int(tid), comm, "S", rest))
    else:
        r = re.search(r"0x([0-9a-f]+)", rest)
        ret = int(r.group(1), 16) if r else 0
        if ret >= 1 << 63: ret -= 1 << 64
        if ret > 0:
            ev.append((t, int(pid), int(tid), comm, "R", rest))
# thread roles: client = query_bench comm; others by order of appearance after client send
client = [e for e in ev if e[3].startswith("query_bench")]
ctid = min(e[1] for e in client)  # the parent process: the client
others = {}
for e in ev:
    if e[2] != ctid: others[e[2]] = others.get(e[2], 0) + 1
busy = sorted(others, key=lambda x: -others[x])[:2]
# server thread: the first non-client thread to receive after a client send
steps = {k: [] for k in ["c->s", "s in->out", "s->a", "a in->out", "a->s", "s ans in->out", "s->c", "total"]}
n = len(ev)
i = 0
while i < n:
    e = ev[i]
    if not (e[2] == ctid and e[4] == "S"):
        i += 1; continue
    pattern = [("R","srv"),("S","srv"),("R","sat"),("S","sat"),("R","srv"),("S","srv"),("R","cli")]
    tids = {"cli": ctid}
    seq = [e]; k = 0; j = i + 1
    while j < n and k < len(pattern) and j < i + 60:
        f = ev[j]; kind, role = pattern[k]
        if f[4] == kind:
            if role in tids:
                ok = f[2] == tids[role]
            else:
                ok = f[2] != ctid and f[2] not in tids.values()
                if ok: tids[role] = f[2]
            if ok:
                seq.append(f); k += 1
        j += 1
    if k == len(pattern):
        t = [x[0] for x in seq]
        for name, a, b in [("c->s",0,1),("s in->out",1,2),("s->a",2,3),("a in->out",3,4),("a->s",4,5),("s ans in->out",5,6),("s->c",6,7),("total",0,7)]:
            steps[name].append(t[b]-t[a])
        i = j
    else:
        i += 1
for k, v in steps.items():
    v = v[500:8500]
    if v:
        q = statistics.quantiles(v, n=20)
        print(f"{k:15s} median {statistics.median(v):7.1f} us  p10 {q[1]:6.1f} p25 {q[4]:6.1f} p75 {q[14]:6.1f} p90 {q[17]:6.1f} (n={len(v)})")
