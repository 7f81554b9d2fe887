;; A runnable with the env imports of one SwiftWasm builds with Suborbital's SDK, to show the
;; host instantiates and runs such a module without the toolchain.
;;   env: every function the SDK declares (suborbital/reactr api/swift/Sources/suborbital/
;;     lib.swift), by their `_swift` names with Swift's two extra i32 parameters (swiftself,
;;     swifterror) after the ABI's own; get_static_file_swift is not supported by the host.
;;   wasi_snapshot_preview1: fd_write only, for the print (no source lists what the SwiftWasm
;;     runtime imports).
;; Like a SwiftWasm runnable, it exports `_start` (the runtime and main.swift's top level) and
;; `init` (where the runnable calls Suborbital.Set(runnable:)): `_start` sets a flag to 1,
;; `init` traps unless it is 1 and sets it to 2; run_e requires 2, else answers nothing (the SDK
;; has no return_error_swift), an empty output.
;; run_e: prints "hello from swift" on stdout, log_msg_swift("swift runnable ran", info), answers
;; "hello, <input>" by return_result_swift.
;; Memory: 0..255 constants, 256..511 WASI scratch, 1024 the flag, 4096.. allocations.
(module
  (import "env" "return_result_swift" (func $return_result_swift (param i32 i32 i32 i32 i32)))
  (import "env" "get_ffi_result_swift"
    (func $get_ffi_result_swift (param i32 i32 i32 i32) (result i32)))
  (import "env" "log_msg_swift" (func $log_msg_swift (param i32 i32 i32 i32 i32 i32)))
  (import "env" "fetch_url_swift"
    (func $fetch_url_swift (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_set_swift"
    (func $cache_set_swift (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_get_swift" (func $cache_get_swift (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "request_get_field_swift"
    (func $request_get_field_swift (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_static_file_swift"
    (func $get_static_file_swift (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from swift\n")
  (data (i32.const 64) "hello, ")
  (data (i32.const 112) "swift runnable ran")
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

  (func (export "init")
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 1)) (then (unreachable)))
    (i32.store (i32.const 1024) (i32.const 2)))

  (func (export "run_e") (param $ptr i32) (param $size i32) (param $ident i32)
    (local $out i32)
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 2))
      (then (return)))
    ;; print: one iovec at 256, nwritten at 264
    (i32.store (i32.const 256) (i32.const 16))
    (i32.store (i32.const 260) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264)))
    (call $log_msg_swift (i32.const 112) (i32.const 18) (i32.const 3) (local.get $ident)
      (i32.const 0) (i32.const 0))
    (local.set $out (call $allocate (i32.add (local.get $size) (i32.const 7))))
    (memory.copy (local.get $out) (i32.const 64) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $ptr) (local.get $size))
    (call $return_result_swift
      (local.get $out) (i32.add (local.get $size) (i32.const 7)) (local.get $ident)
      (i32.const 0) (i32.const 0))))
