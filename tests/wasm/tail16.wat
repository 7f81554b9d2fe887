;; A runnable that answers the last 16 bytes of its input (all of it when shorter), for the
;; streaming tests: the whole body must arrive, and the answer stays small, so the sat's memory
;; shows the body alone. Same bump allocator as echo.wat.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
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
    (if (i32.gt_u (local.get $len) (i32.const 16))
      (then
        (local.set $ptr (i32.add (local.get $ptr) (i32.sub (local.get $len) (i32.const 16))))
        (local.set $len (i32.const 16))))
    (call $return_result (local.get $ptr) (local.get $len) (local.get $ident))))
