;; Like counter.wat ("<memory count>,<global count>", "1,1" on every job from a clean state), but
;; each job also writes with a SIMD store (v128.store), which the host does not track: it restores
;; every byte of such a module's memory instead of the chunks written.
;;   G   count, grow memory by a page, then answer      H   the same by 20 pages
;;   T   count, then trap                               otherwise count and answer
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $count (mut i32) (i32.const 0))
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $op i32)
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (v128.store (i32.const 32) (v128.const i64x2 -1 -1))
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (if (local.get $len) (then (local.set $op (i32.load8_u (local.get $ptr)))))
    (if (i32.eq (local.get $op) (i32.const 0x54)) (then unreachable)) ;; T
    (if (i32.eq (local.get $op) (i32.const 0x47)) (then (drop (memory.grow (i32.const 1))))) ;; G
    (if (i32.eq (local.get $op) (i32.const 0x48)) (then (drop (memory.grow (i32.const 20))))) ;; H
    ;; single digits are enough here: anything but "1,1" fails the test
    (i32.store8 (i32.const 512) (i32.add (i32.const 0x30) (i32.load (i32.const 0))))
    (i32.store8 (i32.const 513) (i32.const 0x2c))
    (i32.store8 (i32.const 514) (i32.add (i32.const 0x30) (global.get $count)))
    (call $return_result (i32.const 512) (i32.const 3) (local.get $ident))))
