;; A runnable with the imports of one Grain builds with Suborbital's SDK, to show the host
;; instantiates and runs such a module without the toolchain.
;;   env: every function of the SDK's bindings (suborbital/reactr api/grain/suborbital/env.gr);
;;     graphql_query is not supported by the host (a call fails the job).
;;   wasi_snapshot_preview1: the 39 functions Grain's runtime declares (grain-lang/grain
;;     stdlib/runtime/wasi.gr), with their preview1 signatures.
;; Like Grain, it exports `_start` (the module's top level): here it sets a flag run_e requires.
;; run_e: clock_time_get(realtime) (error 500 "wasi call failed" if it fails), prints "hello
;; from grain" on stdout, answers "hello, <input>". Without the flag: error 500 "not registered".
;; Memory: 0..255 constants, 256..511 WASI scratch, 1024 the flag, 4096.. allocations.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "log_msg" (func $log_msg (param i32 i32 i32 i32)))
  (import "env" "fetch_url" (func $fetch_url (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "graphql_query" (func $graphql_query (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_set" (func $cache_set (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_get" (func $cache_get (param i32 i32 i32) (result i32)))
  (import "env" "request_get_field" (func $request_get_field (param i32 i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (import "env" "return_abort" (func $return_abort (param i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "proc_raise" (func $proc_raise (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $sched_yield (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread"
    (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite"
    (func $fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_allocate"
    (func $fd_allocate (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_datasync" (func $fd_datasync (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_sync" (func $fd_sync (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get"
    (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags"
    (func $fd_fdstat_set_flags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_rights"
    (func $fd_fdstat_set_rights (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get"
    (func $fd_filestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size"
    (func $fd_filestat_set_size (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_times"
    (func $fd_filestat_set_times (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir"
    (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $fd_renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func $fd_tell (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $path_create_directory (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_set_times"
    (func $path_filestat_set_times (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link"
    (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file"
    (func $path_unlink_file (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_readlink"
    (func $path_readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_remove_directory"
    (func $path_remove_directory (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename"
    (func $path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from grain\n")
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
    (i32.store (i32.const 1024) (i32.const 1)))

  (func (export "run_e") (param $ptr i32) (param $size i32) (param $ident i32)
    (local $out i32)
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 1))
      (then
        (call $return_error (i32.const 500) (i32.const 80) (i32.const 14) (local.get $ident))
        (return)))
    (if (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 272))
      (then
        (call $return_error (i32.const 500) (i32.const 112) (i32.const 16) (local.get $ident))
        (return)))
    ;; print: one iovec at 256, nwritten at 264
    (i32.store (i32.const 256) (i32.const 16))
    (i32.store (i32.const 260) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264)))
    (local.set $out (call $allocate (i32.add (local.get $size) (i32.const 7))))
    (memory.copy (local.get $out) (i32.const 64) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $ptr) (local.get $size))
    (call $return_result
      (local.get $out) (i32.add (local.get $size) (i32.const 7)) (local.get $ident))))
