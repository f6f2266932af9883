/*
 * tinyq device runtime: the line protocol between the host and the model (one source for the
 * bare-metal firmware and the Arduino library's sketch).
 *
 * Device -> host (one line each, '\n'-terminated):
 *   tinyq-info v=1 board=<id> target=<qemu|board> model=<id> in=<B> out=<B> arena=<B> ops=<n>
 *              (arena = activations + kernel scratch: all RAM the model needs)
 *              macs=<n> timer=<dwt|systick> timer_hz=<hz> cpu_hz=<hz> static_ram=<B> flash=<B> stack=<B>
 *              consoles=<uart|uart+usb|uart,usb-off>   (usb-off: the board has USB, but no VBUS)
 *   tinyq-ready                       after boot and after every command
 * Host -> device:
 *   load <hex>                        the input, 2 hex digits a byte   -> "tq-ok load"
 *   infer <N> <W>                     W warm-ups, then N timed runs of the loaded input:
 *        m-lap-us-<t>                 MLPerf Tiny runner style timestamps (µs) around the N runs
 *        tq-run <i> <ticks>           per timed run
 *        tq-median <ticks>
 *        tq-output <hex>              the output bytes of the last run
 *        tq-stack <B>                 stack high-water mark so far (painted stack)
 *        tq-done infer
 *   profile                           one run with a clock read between ops:
 *        tq-layer <i> <op> <ticks>  ... tq-done profile
 *   info                              the tinyq-info line again (a host that opened the port late)
 *   quit                              exit (QEMU ends; a board resets)
 * Errors are "tq-error <what>". All numbers are decimal.
 */
#include <stdint.h>

#include "tq_board.h"
#include "tq_model.h"
#include "tq_port.h"
#include "tq_protocol.h"

uint32_t tq_stack_high_water(void);
/* What the caller measured of the image (0 where it cannot tell, e.g. inside an Arduino sketch). */
static uint32_t image_static_ram, image_flash;

#define MAX_RUNS 64

static int8_t input[TQ_MODEL_INPUT_BYTES] __attribute__((aligned(4)));
static int8_t output[TQ_MODEL_OUTPUT_BYTES] __attribute__((aligned(4)));
static uint32_t runs[MAX_RUNS];
static uint32_t op_ticks[TQ_MODEL_NUM_OPS];

static void puts_(const char *s) { while (*s) tq_console_putc(*s++); }

static void putu(uint32_t v) {
    char buf[11];
    int n = 0;
    do { buf[n++] = (char)('0' + v % 10u); v /= 10u; } while (v);
    while (n) tq_console_putc(buf[--n]);
}

static void kv(const char *key, uint32_t v) { tq_console_putc(' '); puts_(key); tq_console_putc('='); putu(v); }

static void put_hex(const int8_t *p, uint32_t n) {
    static const char digits[] = "0123456789abcdef";
    for (uint32_t i = 0; i < n; ++i) {
        const uint8_t b = (uint8_t)p[i];
        tq_console_putc(digits[b >> 4]);
        tq_console_putc(digits[b & 15u]);
    }
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_word(char *buf, int cap) {
    /* Next space/newline-delimited word; returns its length, the delimiter in buf[len+1]. */
    int n = 0, c;
    while ((c = tq_console_getc()) == ' ' || c == '\r') {}
    while (c != ' ' && c != '\n' && c != '\r') {
        if (n < cap - 1) buf[n++] = (char)c;
        c = tq_console_getc();
    }
    buf[n] = 0;
    return c == '\n' ? -n - 1 : n; /* negative: the line ended */
}

static uint32_t to_u32(const char *s) {
    uint32_t v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10u + (uint32_t)(*s++ - '0');
    return v;
}

static int streq(const char *a, const char *b) {
    while (*a && *a == *b) { ++a; ++b; }
    return *a == *b;
}

static void skip_line(int ended) { if (!ended) while (tq_console_getc() != '\n') {} }

static void cmd_load(void) {
    /* Hex digits straight into the input buffer: no line buffer as large as the input. */
    uint32_t i = 0;
    int c, hi = -1, bad = 0;
    while ((c = tq_console_getc()) == ' ') {}
    for (; c != '\n'; c = tq_console_getc()) {
        if (c == '\r') continue;
        const int v = hexval(c);
        if (v < 0) { bad = 1; continue; }
        if (hi < 0) { hi = v; continue; }
        if (i < TQ_MODEL_INPUT_BYTES) input[i] = (int8_t)(uint8_t)((hi << 4) | v);
        ++i;
        hi = -1;
    }
    if (bad || i != TQ_MODEL_INPUT_BYTES) { puts_("tq-error load: expected "); putu(TQ_MODEL_INPUT_BYTES); puts_(" bytes of hex\n"); return; }
    puts_("tq-ok load\n");
}

static void sort(uint32_t *a, uint32_t n) {
    for (uint32_t i = 1; i < n; ++i) {
        const uint32_t v = a[i];
        uint32_t j = i;
        while (j && a[j - 1] > v) { a[j] = a[j - 1]; --j; }
        a[j] = v;
    }
}

static uint32_t ticks_to_us(uint32_t ticks) {
    return (uint32_t)(((uint64_t)ticks * 1000000u) / tq_timer_hz());
}

static void cmd_infer(uint32_t n, uint32_t warmup) {
    if (n == 0 || n > MAX_RUNS) { puts_("tq-error infer: N must be 1.."); putu(MAX_RUNS); tq_console_putc('\n'); return; }
    for (uint32_t i = 0; i < warmup; ++i) {
        tq_model_run(input, output);
        tq_console_service();
    }
    const uint32_t start = tq_timer_now();
    for (uint32_t i = 0; i < n; ++i) {
        /* Start on a fresh timer tick: how long the host took to send the input changes
         * the phase of a coarse timer (SysTick on the emulator: 40 instructions a tick),
         * and with it the count by one tick. Synchronised, the figure is exact. */
        const uint32_t s = tq_timer_now();
        while (tq_timer_now() == s) {}
        /* Nothing is printed inside the timed region: UART output would be timed too. */
        const uint32_t t0 = tq_timer_now();
        tq_model_run(input, output);
        runs[i] = tq_timer_now() - t0;
        tq_console_service(); /* after the run's figure is taken */
    }
    const uint32_t end = tq_timer_now();
    puts_("m-lap-us-"); putu(ticks_to_us(start)); tq_console_putc('\n');
    puts_("m-lap-us-"); putu(ticks_to_us(end)); tq_console_putc('\n');
    for (uint32_t i = 0; i < n; ++i) { puts_("tq-run "); putu(i); tq_console_putc(' '); putu(runs[i]); tq_console_putc('\n'); }
    sort(runs, n);
    puts_("tq-median "); putu(n % 2 ? runs[n / 2] : (runs[n / 2 - 1] + runs[n / 2]) / 2u); tq_console_putc('\n');
    puts_("tq-output "); put_hex(output, TQ_MODEL_OUTPUT_BYTES); tq_console_putc('\n');
    puts_("tq-stack "); putu(tq_stack_high_water()); tq_console_putc('\n');
    puts_("tq-done infer\n");
}

static void cmd_profile(void) {
    tq_model_run_profiled(input, output, tq_timer_now, op_ticks);
    for (uint32_t i = 0; i < TQ_MODEL_NUM_OPS; ++i) {
        puts_("tq-layer "); putu(i); tq_console_putc(' '); puts_(tq_model_op_names[i]);
        tq_console_putc(' '); putu(op_ticks[i]); tq_console_putc('\n');
    }
    puts_("tq-done profile\n");
}

static void print_info(void) {
    const uint32_t static_ram = image_static_ram, flash = image_flash;
    puts_("\ntinyq-info v=1 board=" TQ_BOARD_ID " target=" TQ_TARGET " model=");
    puts_(tq_model_id);
    kv("in", TQ_MODEL_INPUT_BYTES); kv("out", TQ_MODEL_OUTPUT_BYTES); kv("arena", TQ_MODEL_RAM_BYTES);
    kv("ops", TQ_MODEL_NUM_OPS); kv("macs", TQ_MODEL_MACS);
    puts_(" timer="); puts_(tq_timer_kind());
    kv("timer_hz", tq_timer_hz()); kv("cpu_hz", TQ_BOARD_CPU_HZ);
    kv("static_ram", static_ram); kv("flash", flash); kv("stack", TQ_STACK_BYTES);
    puts_(" consoles="); puts_(tq_console_names());
    tq_console_putc('\n');
}

void tq_console_on_connect(void) {
    /* A host opened the USB port after the boot line went out: greet it as at boot. */
    print_info();
    puts_("tinyq-ready\n");
}

int tq_protocol_main(uint32_t static_ram, uint32_t flash) {
    image_static_ram = static_ram;
    image_flash = flash;
    tq_console_init();
    tq_timer_init();
    print_info();
    char word[16];
    for (;;) {
        puts_("tinyq-ready\n");
        int len = read_word(word, sizeof word);
        const int ended = len < 0;
        if (ended) len = -len - 1;
        if (len == 0) continue;
        if (streq(word, "load")) {
            if (ended) { puts_("tq-error load: no data\n"); continue; }
            cmd_load();
        } else if (streq(word, "infer")) {
            char a[12] = "1", b[12] = "0";
            int l1 = ended ? -1 : read_word(a, sizeof a), l2 = -1;
            if (l1 >= 0) l2 = read_word(b, sizeof b);
            if (l2 >= 0) skip_line(0);
            cmd_infer(to_u32(a), to_u32(b));
        } else if (streq(word, "profile")) {
            skip_line(ended);
            cmd_profile();
        } else if (streq(word, "info")) {
            skip_line(ended);
            print_info();
        } else if (streq(word, "quit")) {
            puts_("tq-bye\n");
            return 0;
        } else {
            skip_line(ended);
            puts_("tq-error unknown command\n");
        }
    }
}
