;; A test runnable for env.fetch_url. Its input: a method digit (0 GET ... 6 DELETE), then "n"
;; (fetch_url, get_ffi_result, return_result) or "s" (their _swift names), then the URL (with any
;; "::Name:Value" headers), a newline, and the body (the rest).
;; It answers the response body, or the error message with code 400 (an unknown failure, -1:
;; code 500 "ffi error").
;; Memory: 0..1023 constants, 1024..65535 FFI results, 65536.. the job's input.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (import "env" "fetch_url" (func $fetch_url (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "fetch_url_swift"
    (func $fetch_url_swift (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result_swift"
    (func $get_ffi_result_swift (param i32 i32 i32 i32) (result i32)))
  (import "env" "return_result_swift" (func $return_result_swift (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 80) "ffi error")

  (func (export "allocate") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need
      (i32.sub
        (i32.shr_u (i32.add (i32.add (local.get $size) (i32.const 65536)) (i32.const 65535))
                   (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1)) (then (return (i32.const 0))))))
    (i32.const 65536))

  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $swift i32)
    (local $url i32)
    (local $end i32)
    (local $at i32)
    (local $body i32)
    (local $size i32)
    (local $n i32)
    (if (i32.lt_u (local.get $len) (i32.const 2)) (then unreachable))
    (local.set $swift (i32.eq (i32.load8_u offset=1 (local.get $ptr)) (i32.const 0x73)))
    (local.set $url (i32.add (local.get $ptr) (i32.const 2)))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    ;; The URL ends at the first newline (or the input's end).
    (local.set $at (local.get $url))
    (block $found
      (loop $scan
        (br_if $found (i32.ge_u (local.get $at) (local.get $end)))
        (br_if $found (i32.eq (i32.load8_u (local.get $at)) (i32.const 0x0a)))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $scan)))
    ;; The body starts after the newline; empty if there is none.
    (local.set $body (local.get $at))
    (if (i32.lt_u (local.get $at) (local.get $end))
      (then (local.set $body (i32.add (local.get $at) (i32.const 1)))))
    (if (local.get $swift)
      (then
        (local.set $size
          (call $fetch_url_swift
            (i32.sub (i32.load8_u (local.get $ptr)) (i32.const 0x30))
            (local.get $url) (i32.sub (local.get $at) (local.get $url))
            (local.get $body) (i32.sub (local.get $end) (local.get $body))
            (local.get $ident) (i32.const 0) (i32.const 0))))
      (else
        (local.set $size
          (call $fetch_url
            (i32.sub (i32.load8_u (local.get $ptr)) (i32.const 0x30))
            (local.get $url) (i32.sub (local.get $at) (local.get $url))
            (local.get $body) (i32.sub (local.get $end) (local.get $body))
            (local.get $ident)))))
    (if (i32.eq (local.get $size) (i32.const -1))
      (then
        (call $return_error (i32.const 500) (i32.const 80) (i32.const 9) (local.get $ident))
        (return)))
    (local.set $n (local.get $size))
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then (local.set $n (i32.sub (i32.const 0) (local.get $size)))))
    (if (i32.gt_u (local.get $n) (i32.const 64512)) (then unreachable))
    (if (local.get $swift)
      (then
        (if (call $get_ffi_result_swift (i32.const 1024) (local.get $ident) (i32.const 0) (i32.const 0))
          (then unreachable)))
      (else
        (if (call $get_ffi_result (i32.const 1024) (local.get $ident)) (then unreachable))))
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then
        (call $return_error (i32.const 400) (i32.const 1024) (local.get $n) (local.get $ident))
        (return)))
    (if (local.get $swift)
      (then
        (call $return_result_swift (i32.const 1024) (local.get $n) (local.get $ident)
          (i32.const 0) (i32.const 0)))
      (else (call $return_result (i32.const 1024) (local.get $n) (local.get $ident))))))
