"""The Cortex-M4 timing model behind the benchmarks' estimated cycles."""

from benchmarks.cycles import cycles_of


def test_cortex_m4_timings():
    assert cycles_of("smlad", "r2, sl, ip, r2") == 1
    assert cycles_of("smmlar", "r2, r2, ip, r1") == 1
    assert cycles_of("ldr.w", "fp, [r0], #4") == 2
    assert cycles_of("ldrd", "fp, ip, [r4], #8") == 3
    assert cycles_of("ldm.w", "r1!, {ip, lr}") == 3
    assert cycles_of("stmia", "ip, {r2, r3, r4, r5, r6, r7, r8, sb}") == 9
    assert cycles_of("push.w", "{r4, r5, r6, r7, r8, sb, sl, fp, lr}") == 10
    assert cycles_of("pop.w", "{r4-r11, pc}") == 1 + 9 + 2
    assert cycles_of("strb", "r2, [r0]") == 1
    assert cycles_of("bne", "#0x1002") == 2 and cycles_of("b.n", "#0x10") == 3 and cycles_of("bic", "r0, r1") == 1
