using System.Numerics.Tensors;

namespace Platform.VectorSearch;

/// <summary>One search hit.</summary>
/// <param name="Id">Document id.</param>
/// <param name="Score">Cosine similarity in [-1, 1].</param>
/// <param name="Metadata">The document's metadata.</param>
public sealed record SearchHit(Guid Id, float Score, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Exact cosine top-k over unit-normalised vectors kept in one contiguous block: a query is a
/// matrix-vector product (SIMD dot products) split across cores, plus a bounded heap per core.
/// Exact search is what the similarity tests demand (the result equals brute force) and at
/// 100k × 384 it answers in milliseconds, so no approximate index is needed at this scale.
/// </summary>
public sealed class VectorIndex
{
    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);
    private readonly Dictionary<Guid, int> _rows = [];
    private float[] _vectors;
    private Guid[] _ids;
    private IReadOnlyDictionary<string, string>[] _metadata;
    private int _count;

    /// <summary>Creates an empty index for vectors of <paramref name="dimensions"/> floats.</summary>
    public VectorIndex(int dimensions, int initialCapacity = 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 1);
        Dimensions = dimensions;
        _vectors = new float[Math.Max(1, initialCapacity) * dimensions];
        _ids = new Guid[Math.Max(1, initialCapacity)];
        _metadata = new IReadOnlyDictionary<string, string>[Math.Max(1, initialCapacity)];
    }

    /// <summary>Vector length.</summary>
    public int Dimensions { get; }

    /// <summary>Number of documents.</summary>
    public int Count
    {
        get
        {
            _lock.EnterReadLock();
            try
            {
                return _count;
            }
            finally
            {
                _lock.ExitReadLock();
            }
        }
    }

    /// <summary>Adds or replaces a document's vector (normalised here) and metadata.</summary>
    /// <exception cref="ArgumentException">Wrong length, or a zero / non-finite vector.</exception>
    public void Upsert(Guid id, ReadOnlySpan<float> vector, IReadOnlyDictionary<string, string> metadata)
    {
        var norm = Validate(vector, nameof(vector));
        _lock.EnterWriteLock();
        try
        {
            if (!_rows.TryGetValue(id, out var row))
            {
                row = _count++;
                EnsureCapacity(_count);
                _rows[id] = row;
            }

            TensorPrimitives.Multiply(vector, 1f / norm, _vectors.AsSpan(row * Dimensions, Dimensions));
            _ids[row] = id;
            _metadata[row] = metadata;
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>Removes a document; true when it was present.</summary>
    public bool Remove(Guid id)
    {
        _lock.EnterWriteLock();
        try
        {
            if (!_rows.Remove(id, out var row))
            {
                return false;
            }

            // Keep the block dense: move the last row into the hole.
            var last = --_count;
            if (row != last)
            {
                _vectors.AsSpan(last * Dimensions, Dimensions).CopyTo(_vectors.AsSpan(row * Dimensions, Dimensions));
                _ids[row] = _ids[last];
                _metadata[row] = _metadata[last];
                _rows[_ids[row]] = row;
            }

            _metadata[last] = null!;
            return true;
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>
    /// The <paramref name="k"/> documents most similar to <paramref name="query"/> whose metadata contains every
    /// pair of <paramref name="filter"/>, best first (ties broken by id for a stable order).
    /// </summary>
    public IReadOnlyList<SearchHit> Search(ReadOnlySpan<float> query, int k, IReadOnlyDictionary<string, string>? filter = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        var norm = Validate(query, nameof(query));
        var q = new float[Dimensions];
        TensorPrimitives.Multiply(query, 1f / norm, q);

        _lock.EnterReadLock();
        try
        {
            var count = _count;
            if (count == 0)
            {
                return [];
            }

            var partitions = Math.Min(Environment.ProcessorCount, Math.Max(1, count / 8192));
            var heaps = new TopK[partitions];
            Parallel.For(0, partitions, p =>
            {
                var start = (int)((long)count * p / partitions);
                var end = (int)((long)count * (p + 1) / partitions);
                var heap = new TopK(k);
                var vectors = _vectors;
                for (var row = start; row < end; row++)
                {
                    if (filter is not null && !Matches(_metadata[row], filter))
                    {
                        continue;
                    }

                    heap.Offer(TensorPrimitives.Dot(vectors.AsSpan(row * Dimensions, Dimensions), q), row, _ids[row]);
                }

                heaps[p] = heap;
            });

            var merged = new TopK(k);
            foreach (var heap in heaps)
            {
                foreach (var (score, row, id) in heap.Items)
                {
                    merged.Offer(score, row, id);
                }
            }

            return merged.Items
                .OrderByDescending(h => h.Score).ThenBy(h => h.Id)
                .Select(h => new SearchHit(h.Id, h.Score, _metadata[h.Row]))
                .ToList();
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    private float Validate(ReadOnlySpan<float> vector, string name)
    {
        if (vector.Length != Dimensions)
        {
            throw new ArgumentException($"{name} has {vector.Length} dimensions; this index holds {Dimensions}.", name);
        }

        var norm = TensorPrimitives.Norm(vector);
        if (!float.IsFinite(norm) || norm == 0f)
        {
            throw new ArgumentException($"{name} must be finite and non-zero.", name);
        }

        return norm;
    }

    private static bool Matches(IReadOnlyDictionary<string, string> metadata, IReadOnlyDictionary<string, string> filter)
    {
        foreach (var (key, value) in filter)
        {
            if (!metadata.TryGetValue(key, out var actual) || !string.Equals(actual, value, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private void EnsureCapacity(int rows)
    {
        if (rows <= _ids.Length)
        {
            return;
        }

        var capacity = Math.Max(rows, _ids.Length * 2);
        Array.Resize(ref _vectors, capacity * Dimensions);
        Array.Resize(ref _ids, capacity);
        Array.Resize(ref _metadata, capacity);
    }

    /// <summary>Bounded min-heap keeping the k best (score, id) pairs.</summary>
    private sealed class TopK(int k)
    {
        private readonly PriorityQueue<(float Score, int Row, Guid Id), (float Score, Guid Id)> _heap =
            new(k + 1, Comparer<(float Score, Guid Id)>.Create((a, b) =>
            {
                var byScore = a.Score.CompareTo(b.Score);
                return byScore != 0 ? byScore : b.Id.CompareTo(a.Id); // among equal scores the larger id is "worse"
            }));

        public IEnumerable<(float Score, int Row, Guid Id)> Items => _heap.UnorderedItems.Select(i => i.Element);

        public void Offer(float score, int row, Guid id)
        {
            if (_heap.Count < k)
            {
                _heap.Enqueue((score, row, id), (score, id));
                return;
            }

            _heap.TryPeek(out _, out var worst);
            if (score > worst.Score || (score == worst.Score && id.CompareTo(worst.Id) < 0))
            {
                _heap.DequeueEnqueue((score, row, id), (score, id));
            }
        }
    }
}
