;; A runnable importing env.does_not_exist, a function no Suborbital SDK declares: it loads (the
;; host lists it in unsupportedImports) and a job that calls it fails, naming it.
;;   c          calls does_not_exist
;;   otherwise  echoes the input
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "does_not_exist" (func $does_not_exist (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param $ptr i32) (param $size i32) (param $ident i32)
    (if (i32.and (i32.eq (local.get $size) (i32.const 1))
          (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 0x63)))
      (then (drop (call $does_not_exist (local.get $ident)))))
    (call $return_result (local.get $ptr) (local.get $size) (local.get $ident))))
