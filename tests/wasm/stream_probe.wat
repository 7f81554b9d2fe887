;; A runnable for the streamed-input tests that reads its request, by the input's first byte:
;; - "t": traps (after the whole input was written into its memory);
;; - "!": writes over a byte in the middle of its input, then returns the meta field `body`;
;; - "{": returns the string field "k" of the JSON body (request_get_field type 1);
;; - anything else: returns the meta field `body` (request_get_field(0, "body")).
;; A failed field read returns the error message with return_error code 422.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "request_get_field" (func $get_field (param i32 i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "body")
  (data (i32.const 32) "k")
  (global $next (mut i32) (i32.const 1024))

  ;; The next 8-byte aligned `n` bytes, the memory grown to hold them (traps if it cannot).
  (func $allocate (export "allocate") (param $n i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr (global.get $next))
    (local.set $end
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (block $ok
      (br_if $ok
        (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $ok
        (i32.ne
          (memory.grow
            (i32.sub
              (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
              (memory.size)))
          (i32.const -1)))
      unreachable)
    (global.set $next (local.get $end))
    (local.get $ptr))

  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $mode i32)
    (local $size i32)
    (local $out i32)
    (if (local.get $len)
      (then (local.set $mode (i32.load8_u (local.get $ptr)))))
    (if (i32.eq (local.get $mode) (i32.const 0x74)) ;; "t"
      (then unreachable))
    (if (i32.eq (local.get $mode) (i32.const 0x21)) ;; "!"
      (then
        (i32.store8
          (i32.add (local.get $ptr) (i32.shr_u (local.get $len) (i32.const 1)))
          (i32.xor
            (i32.load8_u (i32.add (local.get $ptr) (i32.shr_u (local.get $len) (i32.const 1))))
            (i32.const 0xff)))))
    (local.set $size
      (if (result i32) (i32.eq (local.get $mode) (i32.const 0x7b)) ;; "{"
        (then (call $get_field (i32.const 1) (i32.const 32) (i32.const 1) (local.get $ident)))
        (else (call $get_field (i32.const 0) (i32.const 16) (i32.const 4) (local.get $ident)))))
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then
        (local.set $size (i32.sub (i32.const 0) (local.get $size)))
        (local.set $out (call $allocate (local.get $size)))
        (drop (call $get_ffi_result (local.get $out) (local.get $ident)))
        (call $return_error (i32.const 422) (local.get $out) (local.get $size) (local.get $ident))
        (return)))
    (local.set $out (call $allocate (local.get $size)))
    (drop (call $get_ffi_result (local.get $out) (local.get $ident)))
    (call $return_result (local.get $out) (local.get $size) (local.get $ident))))
