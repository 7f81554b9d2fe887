;; A test runnable that imports every function of wasi_snapshot_preview1 (so the host must
;; provide them all); the first input byte picks the behaviour:
;;   o<text> / O<text>   fd_write(1 / 2, text as two iovecs: its first byte, the rest), then
;;                       answers nwritten as u32
;;   x<d>    proc_exit(d)       X   return_result("before exit"), then proc_exit(0)
;;   r       random_get 32 bytes, answered
;;   c<d>    clock_time_get(d): answers u64 time then u32 errno
;;   n       answers the errnos of fd_read, path_open, sock_send, sched_yield, fd_prestat_get(3),
;;           args_sizes_get, environ_sizes_get, fd_write(5) (8 bytes), 8 zero bytes, then
;;           the four u32 counts args_sizes_get and environ_sizes_get wrote (prefilled 0xff)
;;   b       fd_write with its iovecs outside memory
;;   otherwise echo the input
;; Memory: 0..1023 constants, 1024..4095 results, 4096.. the job's input.
(module
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get" (func $clock_res_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_advise" (func $fd_advise (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_allocate" (func $fd_allocate (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_datasync" (func $fd_datasync (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $fd_fdstat_set_flags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func $fd_fdstat_set_rights (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $fd_filestat_set_size (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_times" (func $fd_filestat_set_times (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $fd_renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_sync" (func $fd_sync (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func $fd_tell (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $path_create_directory (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_set_times" (func $path_filestat_set_times (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link" (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_readlink" (func $path_readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_remove_directory" (func $path_remove_directory (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename" (func $path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $path_unlink_file (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "proc_raise" (func $proc_raise (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $sched_yield (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $sock_shutdown (param i32 i32) (result i32)))
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "before exit")
  (data (i32.const 1040) "\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff")

  (func (export "allocate") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need
      (i32.sub
        (i32.shr_u (i32.add (i32.add (local.get $size) (i32.const 4096)) (i32.const 65535))
                   (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1)) (then (return (i32.const 0))))))
    (i32.const 4096))

  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $op i32)
    (if (i32.eqz (local.get $len))
      (then (call $return_result (local.get $ptr) (i32.const 0) (local.get $ident)) (return)))
    (local.set $op (i32.load8_u (local.get $ptr)))

    (if (i32.or (i32.eq (local.get $op) (i32.const 0x6f)) (i32.eq (local.get $op) (i32.const 0x4f)))
      (then ;; o / O: iovecs at 1024: [ptr+1, 1], [ptr+2, len-2]; nwritten at 1040
        (i32.store (i32.const 1024) (i32.add (local.get $ptr) (i32.const 1)))
        (i32.store (i32.const 1028) (i32.const 1))
        (i32.store (i32.const 1032) (i32.add (local.get $ptr) (i32.const 2)))
        (i32.store (i32.const 1036) (i32.sub (local.get $len) (i32.const 2)))
        (if (call $fd_write (select (i32.const 1) (i32.const 2) (i32.eq (local.get $op) (i32.const 0x6f)))
              (i32.const 1024) (i32.const 2) (i32.const 1040))
          (then unreachable))
        (call $return_result (i32.const 1040) (i32.const 4) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x78)) ;; x<d>
      (then
        (call $proc_exit (i32.sub (i32.load8_u offset=1 (local.get $ptr)) (i32.const 0x30)))
        unreachable))
    (if (i32.eq (local.get $op) (i32.const 0x58)) ;; X
      (then
        (call $return_result (i32.const 16) (i32.const 11) (local.get $ident))
        (call $proc_exit (i32.const 0))
        unreachable))
    (if (i32.eq (local.get $op) (i32.const 0x72)) ;; r
      (then
        (if (call $random_get (i32.const 1024) (i32.const 32)) (then unreachable))
        (call $return_result (i32.const 1024) (i32.const 32) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x63)) ;; c<d>
      (then
        (i32.store (i32.const 1032)
          (call $clock_time_get (i32.sub (i32.load8_u offset=1 (local.get $ptr)) (i32.const 0x30))
            (i64.const 1000) (i32.const 1024)))
        (call $return_result (i32.const 1024) (i32.const 12) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x6e)) ;; n
      (then
        (i32.store8 (i32.const 1024)
          (call $fd_read (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
        (i32.store8 (i32.const 1025)
          (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
            (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)))
        (i32.store8 (i32.const 1026)
          (call $sock_send (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
        (i32.store8 (i32.const 1027) (call $sched_yield))
        (i32.store8 (i32.const 1028) (call $fd_prestat_get (i32.const 3) (i32.const 2000)))
        (i32.store8 (i32.const 1029) (call $args_sizes_get (i32.const 1040) (i32.const 1044)))
        (i32.store8 (i32.const 1030) (call $environ_sizes_get (i32.const 1048) (i32.const 1052)))
        (i32.store8 (i32.const 1031)
          (call $fd_write (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 2000)))
        (call $return_result (i32.const 1024) (i32.const 32) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x62)) ;; b
      (then
        (drop (call $fd_write (i32.const 1) (i32.const 65530) (i32.const 4) (i32.const 2000)))
        (call $return_result (local.get $ptr) (local.get $len) (local.get $ident))
        (return)))
    (call $return_result (local.get $ptr) (local.get $len) (local.get $ident))))
