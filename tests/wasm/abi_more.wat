;; A test runnable for the host functions beyond the basics; the first input byte picks the call,
;; <d> is one digit (a length or a TTL in seconds):
;;   a            return_abort("boom", "main.ts", 12, 5)
;;   s<t><d><key><value>   cache_set(key, value, ttl t), answers "ok" (or error 500 "set failed")
;;   g<key>       cache_get(key)              S<name>   get_secret_value(name)
;;   G<key>       cache_get_swift(key), get_ffi_result_swift, return_result_swift
;;   h<d><key><value>      resp_set_header(key, value) and resp_set_header_swift("x-runnable",
;;                "abi_more"), answers "headers"
;;   v<d><name><value>     add_ffi_var(name, value), answers "ok" (or error 500 "set failed")
;;   p            cache_get with a key outside memory    P   log_msg_swift outside memory
;;   e            return_error_swift(409, "swift error") with log_msg_swift("swift log", 3)
;;   otherwise    return_result_swift(input)
;; A byte-returning call answers its value, or its error message with code 404 (an unknown
;; failure, -1: code 500 "ffi error").
;; Memory: 0..1023 constants, 1024..4095 FFI results, 4096.. the job's input.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "return_abort" (func $return_abort (param i32 i32 i32 i32 i32 i32 i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (import "env" "cache_set" (func $cache_set (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_get" (func $cache_get (param i32 i32 i32) (result i32)))
  (import "env" "get_secret_value" (func $get_secret_value (param i32 i32 i32) (result i32)))
  (import "env" "resp_set_header" (func $resp_set_header (param i32 i32 i32 i32 i32)))
  (import "env" "add_ffi_var" (func $add_ffi_var (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "return_result_swift" (func $return_result_swift (param i32 i32 i32 i32 i32)))
  (import "env" "return_error_swift" (func $return_error_swift (param i32 i32 i32 i32 i32 i32)))
  (import "env" "log_msg_swift" (func $log_msg_swift (param i32 i32 i32 i32 i32 i32)))
  (import "env" "cache_get_swift" (func $cache_get_swift (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result_swift"
    (func $get_ffi_result_swift (param i32 i32 i32 i32) (result i32)))
  (import "env" "resp_set_header_swift"
    (func $resp_set_header_swift (param i32 i32 i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "boom")
  (data (i32.const 32) "main.ts")
  (data (i32.const 48) "ok")
  (data (i32.const 64) "set failed")
  (data (i32.const 80) "ffi error")
  (data (i32.const 96) "headers")
  (data (i32.const 112) "x-runnable")
  (data (i32.const 128) "abi_more")
  (data (i32.const 144) "swift error")
  (data (i32.const 160) "swift log")

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

  ;; Answers a byte-returning call's result of `size`.
  (func $answer (param $size i32) (param $ident i32)
    (local $n i32)
    (if (i32.eq (local.get $size) (i32.const -1))
      (then
        (call $return_error (i32.const 500) (i32.const 80) (i32.const 9) (local.get $ident))
        (return)))
    (local.set $n (local.get $size))
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then (local.set $n (i32.sub (i32.const 0) (local.get $size)))))
    (if (i32.gt_u (local.get $n) (i32.const 3072)) (then unreachable))
    (if (call $get_ffi_result (i32.const 1024) (local.get $ident)) (then unreachable))
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then
        (call $return_error (i32.const 404) (i32.const 1024) (local.get $n) (local.get $ident))
        (return)))
    (call $return_result (i32.const 1024) (local.get $n) (local.get $ident)))

  ;; Answers "ok" if `status` is 0, else error 500 "set failed".
  (func $status (param $status i32) (param $ident i32)
    (if (local.get $status)
      (then (call $return_error (i32.const 500) (i32.const 64) (i32.const 10) (local.get $ident)))
      (else (call $return_result (i32.const 48) (i32.const 2) (local.get $ident)))))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $op i32)
    (local $klen i32)
    (local $size i32)
    (if (i32.eqz (local.get $len))
      (then (call $return_result (local.get $ptr) (i32.const 0) (local.get $ident)) (return)))
    (local.set $op (i32.load8_u (local.get $ptr)))

    (if (i32.eq (local.get $op) (i32.const 0x61)) ;; a
      (then
        (call $return_abort (i32.const 16) (i32.const 4) (i32.const 32) (i32.const 7)
          (i32.const 12) (i32.const 5) (local.get $ident))
        unreachable))
    (if (i32.eq (local.get $op) (i32.const 0x73)) ;; s<t><d><key><value>
      (then
        (local.set $klen (i32.sub (i32.load8_u offset=2 (local.get $ptr)) (i32.const 0x30)))
        (call $status
          (call $cache_set
            (i32.add (local.get $ptr) (i32.const 3)) (local.get $klen)
            (i32.add (i32.add (local.get $ptr) (i32.const 3)) (local.get $klen))
            (i32.sub (i32.sub (local.get $len) (i32.const 3)) (local.get $klen))
            (i32.sub (i32.load8_u offset=1 (local.get $ptr)) (i32.const 0x30))
            (local.get $ident))
          (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x67)) ;; g<key>
      (then
        (call $answer
          (call $cache_get (i32.add (local.get $ptr) (i32.const 1))
            (i32.sub (local.get $len) (i32.const 1)) (local.get $ident))
          (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x53)) ;; S<name>
      (then
        (call $answer
          (call $get_secret_value (i32.add (local.get $ptr) (i32.const 1))
            (i32.sub (local.get $len) (i32.const 1)) (local.get $ident))
          (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x47)) ;; G<key>, all _swift
      (then
        (local.set $size
          (call $cache_get_swift (i32.add (local.get $ptr) (i32.const 1))
            (i32.sub (local.get $len) (i32.const 1)) (local.get $ident) (i32.const 0) (i32.const 0)))
        (if (i32.lt_s (local.get $size) (i32.const 0)) (then unreachable))
        (if (call $get_ffi_result_swift (i32.const 1024) (local.get $ident) (i32.const 0) (i32.const 0))
          (then unreachable))
        (call $return_result_swift (i32.const 1024) (local.get $size) (local.get $ident)
          (i32.const 0) (i32.const 0))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x68)) ;; h<d><key><value>
      (then
        (local.set $klen (i32.sub (i32.load8_u offset=1 (local.get $ptr)) (i32.const 0x30)))
        (call $resp_set_header
          (i32.add (local.get $ptr) (i32.const 2)) (local.get $klen)
          (i32.add (i32.add (local.get $ptr) (i32.const 2)) (local.get $klen))
          (i32.sub (i32.sub (local.get $len) (i32.const 2)) (local.get $klen))
          (local.get $ident))
        (call $resp_set_header_swift (i32.const 112) (i32.const 10) (i32.const 128) (i32.const 8)
          (local.get $ident) (i32.const 0) (i32.const 0))
        (call $return_result (i32.const 96) (i32.const 7) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x76)) ;; v<d><name><value>
      (then
        (local.set $klen (i32.sub (i32.load8_u offset=1 (local.get $ptr)) (i32.const 0x30)))
        (call $status
          (call $add_ffi_var
            (i32.add (local.get $ptr) (i32.const 2)) (local.get $klen)
            (i32.add (i32.add (local.get $ptr) (i32.const 2)) (local.get $klen))
            (i32.sub (i32.sub (local.get $len) (i32.const 2)) (local.get $klen))
            (local.get $ident))
          (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x70)) ;; p
      (then
        (drop (call $cache_get (i32.const 0xffffff00) (i32.const 1000) (local.get $ident)))
        (call $return_result (i32.const 48) (i32.const 2) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x50)) ;; P
      (then
        (call $log_msg_swift (i32.const 65000) (i32.const 1000) (i32.const 3) (local.get $ident)
          (i32.const 0) (i32.const 0))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x65)) ;; e
      (then
        (call $log_msg_swift (i32.const 160) (i32.const 9) (i32.const 3) (local.get $ident)
          (i32.const 0) (i32.const 0))
        (call $return_error_swift (i32.const 409) (i32.const 144) (i32.const 11) (local.get $ident)
          (i32.const 0) (i32.const 0))
        (return)))
    (call $return_result_swift (local.get $ptr) (local.get $len) (local.get $ident)
      (i32.const 0) (i32.const 0))))
