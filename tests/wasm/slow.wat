;; A runnable that keeps the sat busy: it spins for about as many milliseconds as its input
;; says (e.g. "3000"), then returns the input. Suborbital ABI: allocate, deallocate, run_e.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func (export "allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $size)))
    (local.get $ptr))
  (func (export "deallocate") (param $ptr i32) (param $size i32)
    (global.set $next (i32.const 1024)))
  (func (export "run_e") (param $ptr i32) (param $size i32) (param $ident i32)
    (local $ms i64) (local $i i64) (local $k i32)
    ;; parse the decimal input
    (block $done
      (loop $digits
        (br_if $done (i32.ge_u (local.get $k) (local.get $size)))
        (local.set $ms (i64.add (i64.mul (local.get $ms) (i64.const 10))
          (i64.extend_i32_u (i32.sub (i32.load8_u (i32.add (local.get $ptr) (local.get $k))) (i32.const 48)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $digits)))
    ;; roughly 600k iterations per millisecond on this class of machine
    (local.set $i (i64.mul (local.get $ms) (i64.const 600000)))
    (block $out
      (loop $spin
        (br_if $out (i64.eqz (local.get $i)))
        (local.set $i (i64.sub (local.get $i) (i64.const 1)))
        (br $spin)))
    (call $return_result (local.get $ptr) (local.get $size) (local.get $ident)))
)
