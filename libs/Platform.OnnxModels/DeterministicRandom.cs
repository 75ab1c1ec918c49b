namespace Platform.OnnxModels;

/// <summary>
/// SplitMix64 generator. Used instead of <see cref="Random"/> because its sequence is fixed by this code, not
/// by the runtime version, so a seed yields the same model bytes everywhere and forever.
/// </summary>
public sealed class DeterministicRandom(ulong seed)
{
    private ulong _state = seed;

    /// <summary>Next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform float in [-limit, limit).</summary>
    public float NextSymmetric(float limit) => (float)((NextDouble() * 2.0 - 1.0) * limit);

    /// <summary>Uniform integer in [0, maxExclusive).</summary>
    public long NextInt64(long maxExclusive) => (long)(NextUInt64() % (ulong)maxExclusive);

    /// <summary>Fills a new array with uniform values in [-limit, limit).</summary>
    public float[] NextSymmetricArray(int count, float limit)
    {
        var values = new float[count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = NextSymmetric(limit);
        }
        return values;
    }
}
