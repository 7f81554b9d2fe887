;; A runnable with the imports of one TinyGo builds with Suborbital's SDK (`tinygo build -target
;; wasi`), to show the host instantiates and runs such a module without the toolchain.
;;   env: every function the SDK declares (suborbital/reactr
;;     api/tinygo/runnable/internal/ffi/reactr.h); request_set_field and get_static_file are
;;     not supported by the host (a call fails the job).
;;   wasi_snapshot_preview1: what TinyGo's runtime imports (tinygo-org/tinygo
;;     src/runtime/runtime_wasm_wasi.go: args_get, args_sizes_get, clock_time_get, poll_oneoff;
;;     runtime_wasm.go: fd_write; runtime_tinygowasm.go: proc_exit) and what its wasi-libc
;;     brings for the environment and randomness (environ_get, environ_sizes_get, random_get).
;; Like TinyGo, it exports `_start` (the runtime's init, then main, where the SDK registers the
;; runnable): here it reads the argument sizes and sets a flag that run_e requires.
;; run_e: clock_time_get(monotonic) and random_get (error 500 "wasi call failed" if either
;; fails), prints "hello from tinygo" on stdout, answers "hello, <input>". Without the flag:
;; error 500 "not registered".
;; Memory: 0..255 constants, 256..511 WASI scratch, 1024 the flag, 4096.. allocations.
(module
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (import "env" "add_ffi_var" (func $add_ffi_var (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "cache_set" (func $cache_set (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_get" (func $cache_get (param i32 i32 i32) (result i32)))
  (import "env" "log_msg" (func $log_msg (param i32 i32 i32 i32)))
  (import "env" "request_get_field" (func $request_get_field (param i32 i32 i32 i32) (result i32)))
  (import "env" "request_set_field"
    (func $request_set_field (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "fetch_url" (func $fetch_url (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_static_file" (func $get_static_file (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from tinygo\n")
  (data (i32.const 64) "hello, ")
  (data (i32.const 80) "not registered")
  (data (i32.const 112) "wasi call failed")
  (global $heap (mut i32) (i32.const 4096))

  (func $allocate (export "allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (drop (memory.grow
          (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.const 1)) (i32.const 16))
            (i32.sub (i32.const 1) (memory.size)))))))
    (local.get $ptr))

  (func (export "deallocate") (param i32 i32))

  (func (export "_start")
    ;; argc and the size of argv, as TinyGo's runtime reads them before main
    (if (call $args_sizes_get (i32.const 256) (i32.const 260)) (then (unreachable)))
    (if (i32.load (i32.const 256)) (then (unreachable)))
    (i32.store (i32.const 1024) (i32.const 1)))

  (func (export "run_e") (param $ptr i32) (param $size i32) (param $ident i32)
    (local $out i32)
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 1))
      (then
        (call $return_error (i32.const 500) (i32.const 80) (i32.const 14) (local.get $ident))
        (return)))
    (if (i32.or
          (call $clock_time_get (i32.const 1) (i64.const 1000) (i32.const 272))
          (call $random_get (i32.const 280) (i32.const 8)))
      (then
        (call $return_error (i32.const 500) (i32.const 112) (i32.const 16) (local.get $ident))
        (return)))
    ;; println: one iovec at 256, nwritten at 264
    (i32.store (i32.const 256) (i32.const 16))
    (i32.store (i32.const 260) (i32.const 18))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264)))
    (local.set $out (call $allocate (i32.add (local.get $size) (i32.const 7))))
    (memory.copy (local.get $out) (i32.const 64) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $ptr) (local.get $size))
    (call $return_result
      (local.get $out) (i32.add (local.get $size) (i32.const 7)) (local.get $ident))))
