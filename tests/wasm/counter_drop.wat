;; Like counter.wat ("<memory count>,<global count>", "1,1" on every job from a clean state), but
;; each job first copies its answer's prefix from a passive data segment and then drops it
;; (data.drop): a second job in the same instance would trap at memory.init. The snapshot of
;; memories and globals cannot undo a drop, so the host must give every job a fresh instance.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data $prefix "count ")
  (global $count (mut i32) (i32.const 0))
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (memory.init $prefix (i32.const 512) (i32.const 0) (i32.const 6))
    (data.drop $prefix)
    ;; single digits are enough here: anything but "1,1" fails the test
    (i32.store8 (i32.const 518) (i32.add (i32.const 0x30) (i32.load (i32.const 0))))
    (i32.store8 (i32.const 519) (i32.const 0x2c))
    (i32.store8 (i32.const 520) (i32.add (i32.const 0x30) (global.get $count)))
    (call $return_result (i32.const 512) (i32.const 9) (local.get $ident))))
