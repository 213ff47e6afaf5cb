/* The OpenMP entry points that MLIR's OpenMP lowering calls (LLVM's `__kmpc_*` runtime
 * interface), implemented on GNU libgomp, the OpenMP runtime that PyTorch itself loads.
 * Kernels then share eager PyTorch's thread team: two runtimes in one process each keep
 * their idle workers spinning after a parallel region, on cores the other one's next
 * region needs (see threads.py for what was measured).
 *
 * Only what the lowering of `omp.parallel` + `omp.wsloop` emits is here. Every loop is
 * shared dynamically (`lowering.schedule_dynamically` asks for that schedule; its items
 * are independent, so any schedule the dispatch is given is run as a dynamic one). The team size is the calling thread's own (`dynn_omp_set_num_threads`), so
 * PyTorch's thread-count setting is never changed by a kernel. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_SHARED_ARGUMENTS 32

typedef void (*microtask)(int32_t *global_tid, int32_t *bound_tid, ...);

extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int GOMP_loop_ull_dynamic_start(int up, unsigned long long start, unsigned long long end,
                                       unsigned long long incr, unsigned long long chunk,
                                       unsigned long long *istart, unsigned long long *iend);
extern int GOMP_loop_ull_dynamic_next(unsigned long long *istart, unsigned long long *iend);
extern void GOMP_loop_end_nowait(void);
extern void GOMP_barrier(void);
extern int omp_get_thread_num(void);
extern int omp_get_max_threads(void);
extern int omp_get_dynamic(void);
extern void omp_set_dynamic(int dynamic);


static __thread int team_size; /* 0: follow libgomp's (PyTorch's) thread count */
static __thread int dynamic_teams;

struct fork {
    microtask task;
    int argc;
    void *args[MAX_SHARED_ARGUMENTS];
};

struct loop {
    unsigned long long start, end, step, chunk;
    int started;
};

static __thread struct loop current_loop;

int dynn_omp_get_max_threads(void) {
    return team_size > 0 ? team_size : omp_get_max_threads();
}

void dynn_omp_set_num_threads(int threads) { team_size = threads; }

/* The calling thread's team size outside kernel loops (0: PyTorch's) and whether teams
 * shrink to the idle cores (libgomp's dynamic adjustment). */
void dynn_omp_configure(int threads, int dynamic) {
    team_size = threads;
    dynamic_teams = dynamic;
}

int dynn_omp_dynamic_teams(void) { return dynamic_teams; }

int32_t __kmpc_global_thread_num(void *location) {
    (void)location;
    return omp_get_thread_num();
}

static void run_task(void *data) {
    struct fork *fork = data;
    int32_t thread = omp_get_thread_num(), bound = thread;
    void **a = fork->args;
    switch (fork->argc) {
    case 0: fork->task(&thread, &bound); break;
    case 1: fork->task(&thread, &bound, a[0]); break;
    case 2: fork->task(&thread, &bound, a[0], a[1]); break;
    case 3: fork->task(&thread, &bound, a[0], a[1], a[2]); break;
    case 4: fork->task(&thread, &bound, a[0], a[1], a[2], a[3]); break;
    case 5: fork->task(&thread, &bound, a[0], a[1], a[2], a[3], a[4]); break;
    case 6: fork->task(&thread, &bound, a[0], a[1], a[2], a[3], a[4], a[5]); break;
    case 7: fork->task(&thread, &bound, a[0], a[1], a[2], a[3], a[4], a[5], a[6]); break;
    case 8: fork->task(&thread, &bound, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]); break;
    default:
        fork->task(&thread, &bound, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
                   a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18],
                   a[19], a[20], a[21], a[22], a[23], a[24], a[25], a[26], a[27], a[28],
                   a[29], a[30], a[31]);
    }
}

void __kmpc_fork_call(void *location, int32_t argc, microtask task, ...) {
    (void)location;
    struct fork fork = {task, argc, {0}};
    if (argc < 0 || argc > MAX_SHARED_ARGUMENTS) {
        fprintf(stderr, "dynn: a parallel region shares %d values (at most %d)\n", argc,
                MAX_SHARED_ARGUMENTS);
        abort();
    }
    va_list values;
    va_start(values, task);
    for (int i = 0; i < argc; ++i)
        fork.args[i] = va_arg(values, void *);
    va_end(values);
    int threads = dynn_omp_get_max_threads(), was_dynamic = omp_get_dynamic();
    if (was_dynamic != dynamic_teams)
        omp_set_dynamic(dynamic_teams);
    GOMP_parallel(run_task, &fork, (unsigned)threads, 0);
    if (was_dynamic != dynamic_teams)
        omp_set_dynamic(was_dynamic);
}

/* `upper` is inclusive here and exclusive in libgomp; steps are positive (the lowering
 * normalises `scf.parallel` loops to step 1 before sharing them). */
void __kmpc_dispatch_init_8u(void *location, int32_t thread, int32_t schedule,
                             uint64_t lower, uint64_t upper, int64_t step, int64_t chunk) {
    (void)location;
    (void)thread;
    (void)schedule;
    current_loop.start = lower;
    current_loop.end = upper + 1;
    current_loop.step = step > 0 ? (unsigned long long)step : 1;
    current_loop.chunk = chunk > 0 ? (unsigned long long)chunk : 1;
    current_loop.started = 0;
}

int32_t __kmpc_dispatch_next_8u(void *location, int32_t thread, int32_t *last,
                                uint64_t *lower, uint64_t *upper, int64_t *step) {
    (void)location;
    (void)thread;
    struct loop *loop = &current_loop;
    unsigned long long first, end;
    int more;
    if (!loop->started) {
        loop->started = 1;
        more = GOMP_loop_ull_dynamic_start(1, loop->start, loop->end, loop->step, loop->chunk,
                                           &first, &end);
    } else {
        more = GOMP_loop_ull_dynamic_next(&first, &end);
    }
    if (!more) {
        GOMP_loop_end_nowait();
        return 0;
    }
    *lower = first;
    *upper = end - 1;
    *step = (int64_t)loop->step;
    if (last)
        *last = end >= loop->end;
    return 1;
}

void __kmpc_barrier(void *location, int32_t thread) {
    (void)location;
    (void)thread;
    GOMP_barrier();
}
