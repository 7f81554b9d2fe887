;; A runnable that counts its jobs in memory and in a private (not exported) mutable global, and
;; answers "<memory count>,<global count>": "1,1" on every job when each starts from a clean state.
;;   T   count, then trap
;;   G   count, grow memory by a page, then answer
;;   P   count, then answer the memory's size in pages instead
;;   F / S / K / W   count and write where the host's write tracking is easy to get wrong: F
;;       memory.fill across the chunk boundary at 0x2000, S an i64.store across the one at 0x4000,
;;       K memory.copy to 0x8000, W grow a page and write its last byte; then answer
;;   ?   answer "clean" if none of those bytes is set and a page grown now is zero, else "dirty"
;;   otherwise count and answer
;; The start function sets the global from 100 to 0: the clean state is the one after it.
;; Memory: 0..3 the memory count, 16.. a constant, 512.. the answer.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "copied")
  (global $count (mut i32) (i32.const 100))
  (func $init (global.set $count (i32.const 0)))
  (start $init)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))

  ;; Writes $n in decimal at $at; returns the end.
  (func $decimal (param $n i32) (param $at i32) (result i32)
    (if (i32.ge_u (local.get $n) (i32.const 10))
      (then (local.set $at (call $decimal (i32.div_u (local.get $n) (i32.const 10)) (local.get $at)))))
    (i32.store8 (local.get $at) (i32.add (i32.const 0x30) (i32.rem_u (local.get $n) (i32.const 10))))
    (i32.add (local.get $at) (i32.const 1)))

  ;; The OR of bytes $from..$to.
  (func $any (param $from i32) (param $to i32) (result i32)
    (local $or i32)
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $from) (local.get $to)))
        (local.set $or (i32.or (local.get $or) (i32.load8_u (local.get $from))))
        (local.set $from (i32.add (local.get $from) (i32.const 1)))
        (br $bytes)))
    (local.get $or))

  (func $answer (param $text i32) (param $len i32) (param $ident i32)
    (memory.copy (i32.const 512) (local.get $text) (local.get $len))
    (call $return_result (i32.const 512) (local.get $len) (local.get $ident)))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $op i32)
    (local $end i32)
    (local $old i32)
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (if (local.get $len) (then (local.set $op (i32.load8_u (local.get $ptr)))))
    (if (i32.eq (local.get $op) (i32.const 0x54)) (then unreachable)) ;; T
    (if (i32.eq (local.get $op) (i32.const 0x47)) (then (drop (memory.grow (i32.const 1))))) ;; G
    (if (i32.eq (local.get $op) (i32.const 0x46)) ;; F
      (then (memory.fill (i32.const 0x1ffd) (i32.const 0x55) (i32.const 10))))
    (if (i32.eq (local.get $op) (i32.const 0x53)) ;; S
      (then (i64.store offset=0x3ffd (i32.const 0) (i64.const -1))))
    (if (i32.eq (local.get $op) (i32.const 0x4b)) ;; K
      (then (memory.copy (i32.const 0x8000) (i32.const 16) (i32.const 6))))
    (if (i32.eq (local.get $op) (i32.const 0x57)) ;; W
      (then
        (local.set $old (memory.grow (i32.const 1)))
        (i32.store8 (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 1)) (i32.const 7))))
    (if (i32.eq (local.get $op) (i32.const 0x3f)) ;; ?
      (then
        (local.set $old (memory.grow (i32.const 1)))
        (if (i32.or
              (i32.or (call $any (i32.const 0x1ff0) (i32.const 0x2010))
                      (call $any (i32.const 0x3ff0) (i32.const 0x4010)))
              (i32.or
                (i32.or (call $any (i32.const 0x8000) (i32.const 0x8010))
                        (call $any (i32.const 0x10000) (i32.const 0x20000)))
                (i32.ne (local.get $old) (i32.const 1))))
          (then
            (i64.store (i32.const 600) (i64.const 0x7974726964)) ;; "dirty"
            (call $answer (i32.const 600) (i32.const 5) (local.get $ident))
            (return)))
        (i64.store (i32.const 600) (i64.const 0x6e61656c63)) ;; "clean"
        (call $answer (i32.const 600) (i32.const 5) (local.get $ident))
        (return)))
    (if (i32.eq (local.get $op) (i32.const 0x50)) ;; P
      (then
        (local.set $end (call $decimal (memory.size) (i32.const 512)))
        (call $return_result (i32.const 512) (i32.sub (local.get $end) (i32.const 512)) (local.get $ident))
        (return)))
    (local.set $end (call $decimal (i32.load (i32.const 0)) (i32.const 512)))
    (i32.store8 (local.get $end) (i32.const 0x2c))
    (local.set $end (call $decimal (global.get $count) (i32.add (local.get $end) (i32.const 1))))
    (call $return_result (i32.const 512) (i32.sub (local.get $end) (i32.const 512)) (local.get $ident))))
