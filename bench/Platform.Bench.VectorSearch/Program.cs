// Exact top-k cosine search: the index (SIMD dot products across cores) against a scalar
// single-threaded scan of the same data, measured side by side in one run.
using System.Diagnostics;
using Platform.VectorSearch;

var count = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
var dims = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 384;
const int K = 10;
const int Queries = 200;

var random = new Random(42);
var index = new VectorIndex(dims, count);
var raw = new float[count][];
var ids = new Guid[count];
var metadata = new Dictionary<string, string>();
for (var i = 0; i < count; i++)
{
    var v = new float[dims];
    for (var d = 0; d < dims; d++)
    {
        v[d] = (float)(random.NextDouble() * 2 - 1);
    }

    raw[i] = v;
    ids[i] = Guid.NewGuid();
    index.Upsert(ids[i], v, metadata);
}

var queries = Enumerable.Range(0, Queries).Select(_ =>
{
    var q = new float[dims];
    for (var d = 0; d < dims; d++)
    {
        q[d] = (float)(random.NextDouble() * 2 - 1);
    }

    return q;
}).ToArray();

// Warm up both paths.
for (var i = 0; i < 5; i++)
{
    index.Search(queries[i], K);
    Scalar(queries[i]);
}

var indexTimes = Measure(q => index.Search(q, K).Count);
var scalarTimes = Measure(q => Scalar(q).Count);

Console.WriteLine($"exact top-{K} cosine over {count:N0} x {dims} floats, {Queries} queries, {Environment.ProcessorCount} cores");
Console.WriteLine($"{"path",-28} {"p50 ms",8} {"p99 ms",8} {"qps",8}");
Print("VectorIndex (SIMD, parallel)", indexTimes);
Print("scalar scan (1 thread)", scalarTimes);
Console.WriteLine($"RESULT vector_search_p50_ms={Percentile(indexTimes, 0.5):F2}");
Console.WriteLine($"RESULT vector_search_speedup_over_scalar={Percentile(scalarTimes, 0.5) / Percentile(indexTimes, 0.5):F1}");

List<(Guid Id, float Score)> Scalar(float[] q)
{
    var qn = MathF.Sqrt(q.Sum(x => x * x));
    var best = new List<(Guid Id, float Score)>(K + 1);
    for (var i = 0; i < raw.Length; i++)
    {
        float dot = 0, n = 0;
        var v = raw[i];
        for (var d = 0; d < v.Length; d++)
        {
            dot += v[d] * q[d];
            n += v[d] * v[d];
        }

        var score = dot / (MathF.Sqrt(n) * qn);
        if (best.Count < K || score > best[^1].Score)
        {
            best.Add((ids[i], score));
            best.Sort((a, b) => b.Score.CompareTo(a.Score));
            if (best.Count > K)
            {
                best.RemoveAt(K);
            }
        }
    }

    return best;
}

double[] Measure(Func<float[], int> search)
{
    var times = new double[Queries];
    for (var i = 0; i < Queries; i++)
    {
        var sw = Stopwatch.StartNew();
        search(queries[i]);
        times[i] = sw.Elapsed.TotalMilliseconds;
    }

    Array.Sort(times);
    return times;
}

static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

static void Print(string name, double[] times) =>
    Console.WriteLine($"{name,-28} {Percentile(times, 0.5),8:F2} {Percentile(times, 0.99),8:F2} {1000 / Percentile(times, 0.5),8:F0}");
