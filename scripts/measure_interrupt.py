#!/usr/bin/env python3
"""Interrupt latency through the installed kernel, as JupyterLab's stop button sends it.

For each blocking call (Pool::map, Process::join, Queue::get, Lock::acquire), three times: a cell prints
WAITING, blocks in the call; 0.5 s later the client interrupts the kernel (km.interrupt_kernel(), the
kernel spec's interrupt mode). The cell stamps the wall clock when the call returns and prints the result,
so the script reports: interrupt -> the call returned Err(Interrupted), and interrupt -> the cell idle.
Last, a `let` from the first cell is printed: the session was kept.

usage: .venv/bin/python scripts/measure_interrupt.py   (after ./install.sh)
"""
import os
import queue
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import kernel_session as ks  # noqa: E402

km, kc, t0 = ks.start("rust-multiprocessing", kernel_dirs=[os.path.join(REPO, ".venv/share/jupyter/kernels")])
ks.wait_kernel_info(km, kc, 120)
print(ks.execute(kc, "let kept = 42;", 120)[:2], flush=True)
print(ks.execute(kc, "fn slow(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_secs(3)); x }\nlet pool = Pool::new(2).unwrap();", 120)[:2], flush=True)
STAMP = '\nlet stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();\neprintln!("STAMP {stamp:.6} {}", match &r { Ok(_) => "ok".to_string(), Err(e) => format!("{e:?}").chars().take(50).collect::<String>() });'
GO = 'eprintln!("WAITING");\n'
cells = {
 "Pool::map": GO + "let r = pool.map(slow, 0..4u64);",
 "Process::join": "let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_secs(5))); p.start().unwrap();\n" + GO + "let r = p.join();",
 "Queue::get": "let q: Queue<u64> = Queue::new().unwrap();\n" + GO + "let r = q.get();",
 "Lock::acquire": "let l = Lock::new().unwrap(); let l2 = l.clone(); let mut h = Process::new(move || { let _g = l2.acquire().unwrap(); std::thread::sleep(std::time::Duration::from_secs(5)); }); h.start().unwrap(); std::thread::sleep(std::time::Duration::from_millis(300));\n" + GO + "let r = l.acquire().map(|_| ());",
}
def drain():
    for get in (kc.get_iopub_msg, kc.get_shell_msg):
        while True:
            try: get(timeout=0.2)
            except queue.Empty: break
for name, body in cells.items():
  for rnd in range(3):
    drain()
    msg_id = kc.execute(body + STAMP)
    text = ""; t_int = None; stamp = None; end = None; status = None
    deadline = time.time() + 60
    while time.time() < deadline and end is None:
      try: m = kc.get_iopub_msg(timeout=0.05)
      except queue.Empty:
        m = None
      if m and m["parent_header"].get("msg_id") == msg_id:
        if m["msg_type"] == "stream": text += m["content"]["text"]
        if m["msg_type"] == "error": status = "error " + m["content"]["ename"]
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle": end = time.time()
      if t_int is None and "WAITING" in text:
        time.sleep(0.5); t_int = time.time(); km.interrupt_kernel()
    for line in text.splitlines():
      if line.startswith("STAMP"): stamp = float(line.split()[1]); what = line.split(None, 2)[2]
    print(f"{name} round {rnd}: wait returned {1000*(stamp-t_int):.0f} ms after the interrupt ({what}); idle after {1000*(end-t_int):.0f} ms; {status}" if stamp and t_int and end else f"{name} round {rnd}: FAILED text={text[-200:]!r} t_int={t_int} end={end}", flush=True)
print(ks.execute(kc, 'println!("kept {kept}");', 60)[:3], flush=True)
ks.stop(km, kc)
