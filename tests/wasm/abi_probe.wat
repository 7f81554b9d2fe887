;; A test runnable that exercises the host ABI; the first input byte picks the behaviour:
;;   E<msg>      return_error(418, msg)          T   trap (unreachable)
;;   L           loop forever                      X   return_error(422, "before trap"), then trap
;;   R<d><key>   request_get_field(d, key) and answer the field (an error result: code 400)
;;   G           memory.grow by 256 pages (16 MiB); return_error(507) when refused
;;   W<msg>      return_result for another job's ident, then nothing
;;   N           return nothing at all
;;   l<msg>      log_msg(msg, level 2), then echo the whole input
;;   U / V / Q / D  call env.graphql_query / get_static_file / request_set_field / db_exec with
;;               a pointer past the end of memory (the host must fail the job)
;;   otherwise   echo the input
;; Memory: 0..1023 constants, 1024..4095 FFI results, 4096.. the job's input (one at a time).
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "log_msg" (func $log_msg (param i32 i32 i32 i32)))
  (import "env" "request_get_field" (func $request_get_field (param i32 i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (import "env" "graphql_query" (func $graphql_query (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_static_file" (func $get_static_file (param i32 i32 i32) (result i32)))
  (import "env" "request_set_field"
    (func $request_set_field (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "db_exec" (func $db_exec (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "memory.grow refused")
  (data (i32.const 48) "grew")
  (data (i32.const 64) "before trap")
  (data (i32.const 80) "ffi error")

  (func (export "allocate") (param $size i32) (result i32)
    ;; make room for 4096 + size bytes
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
    (local $size i32)
    (local $n i32)
    (if (i32.eqz (local.get $len))
      (then (call $return_result (local.get $ptr) (i32.const 0) (local.get $ident)) (return)))
    (local.set $op (i32.load8_u (local.get $ptr)))

    (if (i32.eq (local.get $op) (i32.const 0x45)) ;; E
      (then
        (call $return_error (i32.const 418) (i32.add (local.get $ptr) (i32.const 1))
          (i32.sub (local.get $len) (i32.const 1)) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x54)) (then unreachable)) ;; T
    (if (i32.eq (local.get $op) (i32.const 0x4c)) (then (loop $forever (br $forever)))) ;; L
    (if (i32.eq (local.get $op) (i32.const 0x58)) ;; X
      (then
        (call $return_error (i32.const 422) (i32.const 64) (i32.const 11) (local.get $ident))
        unreachable))
    (if (i32.eq (local.get $op) (i32.const 0x52)) ;; R
      (then
        (local.set $size
          (call $request_get_field
            (i32.sub (i32.load8_u offset=1 (local.get $ptr)) (i32.const 0x30))
            (i32.add (local.get $ptr) (i32.const 2))
            (i32.sub (local.get $len) (i32.const 2))
            (local.get $ident)))
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
            (call $return_error (i32.const 400) (i32.const 1024) (local.get $n) (local.get $ident))
            (return)))
        (call $return_result (i32.const 1024) (local.get $n) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x47)) ;; G
      (then
        (if (i32.eq (memory.grow (i32.const 256)) (i32.const -1))
          (then
            (call $return_error (i32.const 507) (i32.const 16) (i32.const 19) (local.get $ident))
            (return)))
        (call $return_result (i32.const 48) (i32.const 4) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x57)) ;; W
      (then
        (call $return_result (local.get $ptr) (local.get $len) (i32.add (local.get $ident) (i32.const 1)))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x4e)) (then (return))) ;; N
    (if (i32.eq (local.get $op) (i32.const 0x6c)) ;; l
      (then
        (call $log_msg (i32.add (local.get $ptr) (i32.const 1)) (i32.sub (local.get $len) (i32.const 1))
          (i32.const 2) (local.get $ident))))
    (if (i32.eq (local.get $op) (i32.const 0x55)) ;; U: the query runs past the end
      (then (drop (call $graphql_query (i32.const 0) (i32.const 4)
        (i32.const 65530) (i32.const 64) (local.get $ident)))))
    (if (i32.eq (local.get $op) (i32.const 0x56)) ;; V: a negative address (4 GiB - 16)
      (then (drop (call $get_static_file (i32.const -16) (i32.const 8) (local.get $ident)))))
    (if (i32.eq (local.get $op) (i32.const 0x51)) ;; Q: the value's size is negative
      (then (drop (call $request_set_field (i32.const 4) (i32.const 0) (i32.const 1)
        (i32.const 0) (i32.const -1) (local.get $ident)))))
    (if (i32.eq (local.get $op) (i32.const 0x44)) ;; D: the name is larger than memory
      (then (drop (call $db_exec (i32.const 1) (i32.const 0) (i32.const 0x7fffffff)
        (local.get $ident)))))
    (call $return_result (local.get $ptr) (local.get $len) (local.get $ident))))
