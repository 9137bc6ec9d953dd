// The recurrence's arithmetic (recurrence.cpp includes this file: one translation unit):
// an exponential, sigmoid and tanh written so that GCC vectorises them, the kernel's aligned
// buffers, batch chunks, packed weights and the 64-byte vectors its products accumulate in.

template <typename S> struct ExpConst;

template <> struct ExpConst<float> {
    using Bits = int32_t;
    static constexpr float lo = -87.0f, hi = 87.0f;  // results stay normal numbers
    static constexpr float log2e = 1.44269504088896341f;
    static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    static constexpr float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    static constexpr Bits magic_bits = 0x4B400000, bias = 127, shift = 23;
    static inline float poly(float r) {  // exp(r) on |r| <= ln2/2 (Cephes' expf)
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        return p * r * r + r + 1.0f;
    }
};

template <> struct ExpConst<double> {
    using Bits = int64_t;
    static constexpr double lo = -708.0, hi = 708.0;
    static constexpr double log2e = 1.4426950408889634074;
    static constexpr double ln2_hi = 0.693145751953125, ln2_lo = 1.42860682030941723212e-6;
    static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
    static constexpr Bits magic_bits = 0x4338000000000000LL, bias = 1023, shift = 52;
    static inline double poly(double r) {  // Taylor to r^13: error < 1e-17 on |r| <= ln2/2
        double p = 1.0 / 6227020800.0;
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        return p * r * r + r + 1.0;
    }
};

// exp(x) for x clamped to the range where the result is a normal number.
template <typename S> inline S vexp(S x) {
    using C = ExpConst<S>;
    using Bits = typename C::Bits;
    x = x < C::lo ? C::lo : x;
    x = x > C::hi ? C::hi : x;
    S shifted = x * C::log2e + C::magic;  // round(x / ln2) in the low mantissa bits
    S n = shifted - C::magic;
    S r = x - n * C::ln2_hi;
    r = r - n * C::ln2_lo;
    Bits k;
    std::memcpy(&k, &shifted, sizeof k);
    Bits e = ((k - C::magic_bits) + C::bias) << C::shift;  // 2^n as a bit pattern
    S scale;
    std::memcpy(&scale, &e, sizeof scale);
    return C::poly(r) * scale;
}

template <typename S> inline S vsigmoid(S x) { return S(1) / (S(1) + vexp(-x)); }
// tanh(x) = (1 - e) / (1 + e) with e = exp(-2x): vexp's clamp keeps e finite, so large
// negative x give -1, not inf/inf; ~1-2 ulps for |x| away from 0, and NaN stays NaN (a
// diverging training run must show a NaN loss).
template <typename S> inline S tanh_form(S x) {
    const S e = vexp(S(-2) * x);
    return (S(1) - e) / (S(1) + e);
}

// Near 0 the form loses relative accuracy (1 - e cancels; in float ~4e-7 at |x| = 1/4, which
// gradient sums accumulate), so below |x| = 1/4 (float) or 1/64 (double) the odd Taylor
// series to x^9 is used: its truncation there is under half an ulp (1.5e-8 relative at 1/4,
// 1e-20 at 1/64), and the form's error at the switch is ~2 float ulps (4e-15 in double).
template <typename S> inline S vtanh(S x) {
    constexpr S switch2 = sizeof(S) == 4 ? S(1.0 / 16) : S(1.0 / 4096);  // |x|^2 threshold
    const S x2 = x * x;
    S p = S(62.0 / 2835.0);
    p = p * x2 - S(17.0 / 315.0);
    p = p * x2 + S(2.0 / 15.0);
    p = p * x2 - S(1.0 / 3.0);
    const S series = x + x * x2 * p;
    return x2 < switch2 ? series : tanh_form(x);
}

// The kernel's own buffers start on a 64-byte boundary, as torch's do: a vector load of a
// row never straddles two cache lines (malloc aligns large blocks to 16 bytes only).
template <typename S> struct Aligned {
    using value_type = S;
    Aligned() = default;
    template <typename U> Aligned(const Aligned<U> &) {}
    S *allocate(std::size_t n) {
        return static_cast<S *>(::operator new(n * sizeof(S), std::align_val_t(64)));
    }
    void deallocate(S *ptr, std::size_t) { ::operator delete(ptr, std::align_val_t(64)); }
    template <typename U> bool operator==(const Aligned<U> &) const { return true; }
    template <typename U> bool operator!=(const Aligned<U> &) const { return false; }
};
template <typename S> using Buf = std::vector<S, Aligned<S>>;

// Batch chunks: CH values (four 64-byte vectors) are accumulated in registers across a whole
// sum before they are stored once; n < CH only in the last chunk of a batch. Four, not two:
// the state gradient's sums are single chains per vector, and four hide the FMA latency.
template <typename S> constexpr int64_t chunk() { return 256 / sizeof(S); }

// Every product below walks the batch in chunks of CH values. `Full` chunks have the
// compile-time length CH, so their accumulators stay in registers across the whole sum; only
// the batch's last chunk, of n < CH values, takes the generic path.
#define SRNN_CHUNKS(B, CH, CALL)                                                              \
    for (int64_t c0 = 0; c0 < (B); c0 += (CH)) {                                              \
        if ((B) - c0 >= (CH)) {                                                                \
            constexpr bool Full = true;                                                       \
            const int64_t n = (CH);                                                           \
            CALL;                                                                             \
        } else {                                                                              \
            constexpr bool Full = false;                                                      \
            const int64_t n = (B) - c0;                                                       \
            CALL;                                                                             \
        }                                                                                     \
    }

// A masked weight matrix's kept entries in the order of one of its compressed lists (CSR rows
// or CSC columns), so that the inner loops read their weights contiguously instead of gathering
// them: entry k of outer index o is w[o * outer_stride + index[k] * index_stride].
template <typename S>
Buf<S> packed(const S *w, const int64_t *ptr, const int64_t *index, int64_t n_outer,
              int64_t outer_stride, int64_t index_stride) {
    Buf<S> out(ptr[n_outer]);
    for (int64_t o = 0; o < n_outer; ++o)
        for (int64_t k = ptr[o]; k < ptr[o + 1]; ++k)
            out[k] = w[o * outer_stride + index[k] * index_stride];
    return out;
}

// 64-byte vectors of GCC's vector extension (one typedef per scalar type: an alias template
// drops the attribute). A chunk's accumulators are arrays of these, so they stay in registers;
// written as arrays of scalars with `omp simd`, GCC vectorised the loop over the entries
// instead (gathers, and the sums kept on the stack: the input products ran 1.6-2.6x slower).
typedef float f32x16 __attribute__((vector_size(64)));
typedef double f64x8 __attribute__((vector_size(64)));
template <typename S> struct Vec;
template <> struct Vec<float> { using type = f32x16; };
template <> struct Vec<double> { using type = f64x8; };

template <typename S> inline typename Vec<S>::type vload(const S *p) {
    typename Vec<S>::type v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <typename S> inline void vstore(S *p, typename Vec<S>::type v) {
    std::memcpy(p, &v, sizeof v);
}

// How a chunk of the batch is held: a full chunk as CH / L vectors E of L values each, the
// batch's last, shorter chunk as n single values. The products below are written once over
// `count(n)` elements E at `step` values apart.
template <typename S, bool Full> struct Pack {
    using E = std::conditional_t<Full, typename Vec<S>::type, S>;
    static constexpr int64_t step = sizeof(E) / sizeof(S), cap = chunk<S>() / step;
    static int64_t count(int64_t n) { return Full ? cap : n; }
    static E load(const S *p) {
        if constexpr (Full) return vload(p);
        else return *p;
    }
    static void store(S *p, E v) {
        if constexpr (Full) vstore(p, v);
        else *p = v;
    }
};
