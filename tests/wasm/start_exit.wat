;; A runnable whose WASI `_start` ends with proc_exit(0), as TinyGo and Grain programs may: the host
;; must count that as a clean initialisation. `_start` writes "ready" into memory first; run_e
;; answers those 5 bytes followed by the input, so a job sees what initialisation left behind.
;; With input "x", run_e calls proc_exit(0) itself: during a job that ends the job (an empty answer).
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "_start")
    (i32.store (i32.const 512) (i32.const 0x64616572)) ;; "read"
    (i32.store8 (i32.const 516) (i32.const 0x79)) ;; "y"
    (call $proc_exit (i32.const 0))
    (unreachable))
  (func (export "allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $next))
    (global.set $next (i32.add (local.get $ptr) (local.get $size)))
    (local.get $ptr))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (if (i32.and (i32.eq (local.get $len) (i32.const 1))
          (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 0x78)))
      (then (call $proc_exit (i32.const 0))))
    ;; "ready" then the input, at 4096
    (memory.copy (i32.const 4096) (i32.const 512) (i32.const 5))
    (memory.copy (i32.const 4101) (local.get $ptr) (local.get $len))
    (call $return_result (i32.const 4096) (i32.add (local.get $len) (i32.const 5))
      (local.get $ident))))
