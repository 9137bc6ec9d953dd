// The products of the sparse recurrent layer (sparse_layer.cpp includes this file: one
// translation unit; sparsernn.nn.sparse_kernel builds them together): vectors of lanes, the
// per-thread scratch, products of a compressed matrix with rows of lanes, the one-lane
// (gathered) products, and the sampled products of the weight gradients.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

using i32 = int32_t;  // indices (under 2^31 values per buffer)
using i64 = int64_t;


typedef float f32v __attribute__((vector_size(64)));
typedef double f64v __attribute__((vector_size(64)));
typedef int32_t i32v __attribute__((vector_size(64)));
typedef int64_t i64v __attribute__((vector_size(64)));

template <typename S> struct Lanes;  // a vector of lanes: its type, int type and width
template <> struct Lanes<float> { using V = f32v; using I = i32v; static constexpr int n = 16; };
template <> struct Lanes<double> { using V = f64v; using I = i64v; static constexpr int n = 8; };
template <typename S> using Vof = typename Lanes<S>::V;

using Full = std::true_type;   // a whole vector of lanes
using Part = std::false_type;  // the last, shorter one (n lanes; the rest read as 0)

#if defined(__AVX512F__)  // a partial vector by masked loads and stores
inline f32v part_get(const float *p, i64 n) { return (f32v)_mm512_maskz_loadu_ps((1u << n) - 1, p); }
inline f64v part_get(const double *p, i64 n) { return (f64v)_mm512_maskz_loadu_pd((1u << n) - 1, p); }
inline void part_put(float *p, f32v v, i64 n) { _mm512_mask_storeu_ps(p, (1u << n) - 1, (__m512)v); }
inline void part_put(double *p, f64v v, i64 n) { _mm512_mask_storeu_pd(p, (1u << n) - 1, (__m512d)v); }
#else
template <typename S> inline Vof<S> part_get(const S *p, i64 n) {
    Vof<S> v = {};
    std::memcpy(&v, p, n * sizeof(S));
    return v;
}
template <typename S> inline void part_put(S *p, Vof<S> v, i64 n) { std::memcpy(p, &v, n * sizeof(S)); }
#endif
template <typename S, typename Whole> inline Vof<S> get(const S *p, i64 n, Whole) {
    if constexpr (!Whole::value) return part_get(p, n);
    Vof<S> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <typename S, typename Whole> inline void put(S *p, Vof<S> v, i64 n, Whole) {
    if constexpr (Whole::value) std::memcpy(p, &v, sizeof v);
    else part_put(p, v, n);
}

// f(offset, count, Full or Part) over lanes [0, n), one vector at a time.
template <typename S, typename F> inline void by_vectors(i64 n, F &&f) {
    i64 b = 0;
    for (; b + Lanes<S>::n <= n; b += Lanes<S>::n) f(b, i64(Lanes<S>::n), Full{});
    if (b < n) f(b, n - b, Part{});
}

// The kernel's scratch memory, per thread: one 64-byte aligned block kept across calls and
// grown, at the start of a call, to what the last call needed; what does not fit is borrowed
// for the call (buffers allocated per call would be mapped and page-faulted in every time).
class Arena {
  public:
    ~Arena() { reset(); std::free(base_); }
    void reset() {
        for (char *p : extra_) std::free(p);
        extra_.clear();
        if (need_ > size_) {
            std::free(base_);
            base_ = grab(size_ = need_);
        }
        used_ = need_ = 0;
    }
    void *take(std::size_t bytes) {
        bytes = (bytes + 63) / 64 * 64;
        need_ += bytes;
        if (used_ + bytes > size_) return extra_.emplace_back(grab(bytes));
        used_ += bytes;
        return base_ + used_ - bytes;
    }

  private:
    static char *grab(std::size_t bytes) {
        char *p = static_cast<char *>(std::aligned_alloc(64, bytes ? bytes : 64));
        if (!p) throw std::bad_alloc();
        return p;
    }
    char *base_ = nullptr;
    std::size_t size_ = 0, used_ = 0, need_ = 0;
    std::vector<char *> extra_;
};
thread_local Arena arena;

// n values of scratch from the thread's arena (zeros if asked); valid until the call ends.
template <typename S> inline S *scratch(i64 n, bool zeros = false) {
    S *p = static_cast<S *>(arena.take(n * sizeof(S)));
    if (zeros) std::memset(p, 0, n * sizeof(S));
    return p;
}

// A sparse operand of a product: lines (rows of the CSR, or columns of the CSC) of entries
// `index` with values `val`, both in the same order.
template <typename S> struct Lines { const i64 *ptr; const i32 *index; const S *val; };

// ------------------------------------------------------------------------------ products
// dst[o][lanes] = init[o][lanes] (or 0) + sum over line o's entries k of val[k] * src[index[k]]
// for NV vectors of lanes at once (m lanes if Part); NP partial sums hide the FMA latency.
template <typename S, int NV, int NP, typename Whole = Full>
inline void line_block(Lines<S> m, i64 o, const S *src, i64 src_ld, const S *init, S *dst,
                       i64 lanes = Lanes<S>::n) {
    using V = Vof<S>;
    constexpr int W = Lanes<S>::n;
    V part[NP][NV] = {};
    for (int v = 0; v < NV && init; ++v) part[0][v] = get(init + v * W, lanes, Whole{});
    i64 k = m.ptr[o];
    const i64 end = m.ptr[o + 1];
    for (; k + NP <= end; k += NP)
        for (int p = 0; p < NP; ++p) {
            const S *s = src + i64(m.index[k + p]) * src_ld;
            for (int v = 0; v < NV; ++v) part[p][v] += m.val[k + p] * get(s + v * W, lanes, Whole{});
        }
    for (; k < end; ++k) {
        const S *s = src + i64(m.index[k]) * src_ld;
        for (int v = 0; v < NV; ++v) part[0][v] += m.val[k] * get(s + v * W, lanes, Whole{});
    }
    for (int v = 0; v < NV; ++v) {
        for (int p = 1; p < NP; ++p) part[0][v] += part[p][v];
        put(dst + v * W, part[0][v], lanes, Whole{});
    }
}

#if defined(__AVX512F__) && defined(__AVX512VL__)
// AVX-512 gathers: a register of 16 floats or 8 doubles, its lane mask, and one step of a
// gathered dot product (acc += val * src[index * ld] on the live lanes).
template <typename S> struct Reg;
template <> struct Reg<float> { using R = __m512; using M = __mmask16; };
template <> struct Reg<double> { using R = __m512d; using M = __mmask8; };
inline __m512 zero_of(float) { return _mm512_setzero_ps(); }
inline __m512d zero_of(double) { return _mm512_setzero_pd(); }
inline float total(__m512 a) { return _mm512_reduce_add_ps(a); }
inline double total(__m512d a) { return _mm512_reduce_add_pd(a); }
inline __m512 gather_fma(__m512 acc, __mmask16 live, const i32 *ix, const float *w,
                         const float *src, i32 ld) {
    const __m512i at = _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(live, ix), _mm512_set1_epi32(ld));
    return _mm512_fmadd_ps(_mm512_maskz_loadu_ps(live, w),
                           _mm512_mask_i32gather_ps(acc, live, at, src, 4), acc);
}
inline __m512d gather_fma(__m512d acc, __mmask8 live, const i32 *ix, const double *w,
                          const double *src, i32 ld) {
    const __m256i at = _mm256_mullo_epi32(_mm256_maskz_loadu_epi32(live, ix), _mm256_set1_epi32(ld));
    return _mm512_fmadd_pd(_mm512_maskz_loadu_pd(live, w),
                           _mm512_mask_i32gather_pd(acc, live, at, src, 8), acc);
}
#endif

// One lane: a dot product of the line's values with the gathered src[index * src_ld]
// (src_ld * index fits 32 bits: the callers' buffers hold under 2^31 values).
template <typename S> inline S line_dot(Lines<S> m, i64 o, const S *src, i64 src_ld) {
    i64 k = m.ptr[o];
    const i64 end = m.ptr[o + 1];
#if defined(__AVX512F__) && defined(__AVX512VL__)
    constexpr int W = Lanes<S>::n;
    typename Reg<S>::R acc = zero_of(S(0));
    for (; k < end; k += W) {
        const i64 left = end - k;
        const auto live = typename Reg<S>::M(left >= W ? ~0u : (1u << left) - 1);
        acc = gather_fma(acc, live, m.index + k, m.val + k, src, i32(src_ld));
    }
    return total(acc);
#else
    S acc = 0;
    for (; k < end; ++k) acc += m.val[k] * src[i64(m.index[k]) * src_ld];
    return acc;
#endif
}

// dst rows o in [o0, o1): dst[o * dst_ld + lane] = init[o * init_ld + lane] (init may be null)
// + sum_k val[k] * src[index[k] * src_ld + lane], for lanes [0, n).
template <typename S>
void product(Lines<S> m, i64 o0, i64 o1, const S *src, i64 src_ld, const S *init, i64 init_ld,
             S *dst, i64 dst_ld, i64 n) {
    constexpr int W = Lanes<S>::n;
    for (i64 o = o0; o < o1; ++o) {
        const S *in = init ? init + o * init_ld : nullptr;
        S *out = dst + o * dst_ld;
        if (n == 1) {
            out[0] = (in ? in[0] : S(0)) + line_dot(m, o, src, src_ld);
            continue;
        }
        auto from = [](const S *p, i64 b) { return p ? p + b : nullptr; };
        i64 b = 0;
        for (; b + 4 * W <= n; b += 4 * W)
            line_block<S, 4, 2>(m, o, src + b, src_ld, from(in, b), out + b);
        for (; b + 2 * W <= n; b += 2 * W)
            line_block<S, 2, 4>(m, o, src + b, src_ld, from(in, b), out + b);
        for (; b + W <= n; b += W) line_block<S, 1, 8>(m, o, src + b, src_ld, from(in, b), out + b);
        if (b < n) line_block<S, 1, 2, Part>(m, o, src + b, src_ld, from(in, b), out + b, n - b);
    }
}

// A matrix's lines packed for one-lane products, a vector of lines at a time (sliced
// ELLPACK, built by sparsernn.nn.sparse_kernel.Pattern.sliced): the lines sorted by decreasing
// length, slice s holds lines order[s*W ..] (-1 past the last) with start[s+1] - start[s]
// entries each (its first line's count; shorter lines padded with weight 0 at index 0), entry
// k of a lane at (start[s] + k) * W + lane; pos gives each entry's position among the values
// (-1: padding). One gathered FMA then serves W lines, and no line needs a sum across lanes.
struct Sliced {
    i64 n_slices;
    const i32 *order;
    const i64 *start;
    const i32 *index, *pos;
};

template <typename S> struct Slices {
    const Sliced *p;
    const S *val;  // the values in slice order
};

template <typename S> Slices<S> pack(const Sliced &p, const void *values) {
    const i64 n = p.start[p.n_slices] * Lanes<S>::n;
    S *val = static_cast<S *>(arena.take(n * sizeof(S)));
    for (i64 i = 0; i < n; ++i) val[i] = p.pos[i] < 0 ? S(0) : ((const S *)values)[p.pos[i]];
    return {&p, val};
}

// dst[o * ld] = sum over line o's entries of val * src[index * ld], every line (one lane).
template <typename S> void sliced_product(Slices<S> m, const S *src, S *dst, i64 ld) {
    constexpr int W = Lanes<S>::n;
    const Sliced &p = *m.p;
    for (i64 s = 0; s < p.n_slices; ++s) {
        Vof<S> acc = {};
        for (i64 k = p.start[s]; k < p.start[s + 1]; ++k) {
#if defined(__AVX512F__) && defined(__AVX512VL__)
            acc = (Vof<S>)gather_fma(acc, typename Reg<S>::M(~0u), p.index + k * W, m.val + k * W,
                                     src, i32(ld));
#else
            for (int lane = 0; lane < W; ++lane)
                acc[lane] += m.val[k * W + lane] * src[p.index[k * W + lane] * ld];
#endif
        }
        for (int lane = 0; lane < W; ++lane)
            if (p.order[s * W + lane] >= 0) dst[p.order[s * W + lane] * ld] = acc[lane];
    }
}

template <typename S> inline S across(Vof<S> v) {  // the lanes of a vector, added up
    S total = 0;
    for (int l = 0; l < Lanes<S>::n; ++l) total += v[l];
    return total;
}

// Four dot products over lanes [0, n) sharing one side: out[j] = sum a[l] * s[j][l], two
// vectors of lanes per round (eight accumulators in registers), the rest one at a time.
template <typename S> inline void dots4(const S *a, const S *const s[4], i64 n, S out[4]) {
    using V = Vof<S>;
    constexpr int W = Lanes<S>::n;
    V acc0[4] = {}, acc1[4] = {};
    i64 b = 0;
    for (; b + 2 * W <= n; b += 2 * W) {
        const V a0 = get(a + b, W, Full{}), a1 = get(a + b + W, W, Full{});
        for (int j = 0; j < 4; ++j) {
            acc0[j] += a0 * get(s[j] + b, W, Full{});
            acc1[j] += a1 * get(s[j] + b + W, W, Full{});
        }
    }
    by_vectors<S>(n - b, [&](i64 off, i64 m, auto whole) {
        const V av = get(a + b + off, m, whole);
        for (int j = 0; j < 4; ++j) acc0[j] += av * get(s[j] + b + off, m, whole);
    });
    for (int j = 0; j < 4; ++j) out[j] = across<S>(acc0[j] + acc1[j]);
}

// Sampled product: out[k] = sum over lanes [0, n) of a_row(r)[lane] * src[cols[k] * ld + lane]
// for every kept entry k = (r, cols[k]), four entries of a row at a time.
template <typename S, typename RowOf>
void sampled(const i64 *row_ptr, const i32 *cols, i64 n_rows, RowOf a_row, const S *src, i64 ld,
             i64 n, S *out) {
    for (i64 r = 0; r < n_rows; ++r) {
        const S *a = a_row(r);
        for (i64 k = row_ptr[r]; k < row_ptr[r + 1]; k += 4) {
            const i64 q = row_ptr[r + 1] - k < 4 ? row_ptr[r + 1] - k : 4;
            const S *s[4];
            for (i64 j = 0; j < 4; ++j) s[j] = src + i64(cols[k + (j < q ? j : 0)]) * ld;
            S dot[4];
            dots4(a, s, n, dot);
            for (i64 j = 0; j < q; ++j) out[k + j] = dot[j];
        }
    }
}

// The first n values of `rows` rows, from rows from_ld apart to rows to_ld apart.
template <typename S> inline void rows_copy(S *to, i64 to_ld, const S *from, i64 from_ld,
                                            i64 rows, i64 n) {
    for (i64 j = 0; j < rows; ++j)
        for (i64 l = 0; l < n; ++l) to[j * to_ld + l] = from[j * from_ld + l];
}

// The sum of n values, two vectors of partial sums at a time.
template <typename S> inline S lane_sum(const S *a, i64 n) {
    constexpr int W = Lanes<S>::n;
    Vof<S> p0 = {}, p1 = {};
    i64 b = 0;
    for (; b + 2 * W <= n; b += 2 * W) {
        p0 += get(a + b, W, Full{});
        p1 += get(a + b + W, W, Full{});
    }
    by_vectors<S>(n - b, [&](i64 off, i64 m, auto whole) { p0 += get(a + b + off, m, whole); });
    return across<S>(p0 + p1);
}

}  // namespace
