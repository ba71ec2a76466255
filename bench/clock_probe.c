/* Effective core clock: a chain of dependent 1-cycle integer adds, timed in
 * this thread's CPU time (so time taken by other processes does not count).
 * In a KVM guest /proc/cpuinfo "cpu MHz" is the nominal TSC rate, not the
 * boosted clock the cores actually run at; bench/extraction.py runs one copy
 * per core at once to read the all-core clock.
 *
 * Prints GHz. Build: gcc -O2 -o clock_probe clock_probe.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ADD4 "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
#define ADDS_PER_ITERATION 16

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000000L;
    unsigned long x = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (long i = 0; i < n; i++) {
        /* Each add depends on the one before: exactly one add retires per cycle. */
        __asm__ volatile(ADD4 ADD4 ADD4 ADD4 : "+r"(x));
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%.4f\n", (double)ADDS_PER_ITERATION * (double)n / seconds / 1e9);
    return x == 0; /* uses x, so the chain cannot be optimised away */
}
