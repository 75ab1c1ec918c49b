using Platform.OnnxRuntime;

namespace Platform.Batching;

/// <summary>Batching limits of one model version; may be replaced while the batcher runs.</summary>
/// <param name="MaxBatchSize">A batch closes once it holds this many rows (dimension-0 items); 1 disables batching.</param>
/// <param name="MaxQueueDelay">
/// A batch closes once its oldest request has waited this long. With <see cref="DispatchWhenIdle"/> (the default) a
/// batch never waits for company while the model is idle, so the delay only bounds waiting when idle dispatch is off.
/// </param>
/// <param name="QueueCapacity">Requests waiting beyond this are rejected with <see cref="QueueFullException"/>.</param>
public sealed record BatchingOptions(int MaxBatchSize, TimeSpan MaxQueueDelay, int QueueCapacity)
{
    /// <summary>
    /// Whether a batch also closes as soon as the model version has no batch running: queued requests then run at once
    /// and batches form only from requests that arrived while the previous batch ran. A lone request does not wait
    /// <see cref="MaxQueueDelay"/> for company that may never come, and under load batches still grow to what arrives
    /// during one run (up to <see cref="MaxBatchSize"/>). Off, a batch waits for <see cref="MaxBatchSize"/> rows or
    /// <see cref="MaxQueueDelay"/> (fuller batches at the cost of latency, e.g. for accelerators with a high per-run cost).
    /// </summary>
    public bool DispatchWhenIdle { get; init; } = true;
}

/// <summary>One input tensor of a request: raw little-endian element bytes, or strings for string tensors.</summary>
/// <param name="Name">Model input name.</param>
/// <param name="ElementType">Element type.</param>
/// <param name="Shape">Concrete shape.</param>
/// <param name="Data">Element bytes (row-major); empty for strings.</param>
/// <param name="Strings">Elements of a string tensor, else null.</param>
public sealed record BatchInput(string Name, TensorElementType ElementType, long[] Shape, ReadOnlyMemory<byte> Data, IReadOnlyList<string>? Strings = null);

/// <summary>One output tensor of a request, owned by the caller.</summary>
/// <param name="Name">Model output name.</param>
/// <param name="ElementType">Element type.</param>
/// <param name="Shape">Concrete shape (dimension 0 is this request's rows when the model batches).</param>
/// <param name="Data">Element bytes (row-major); empty for strings.</param>
/// <param name="Strings">Elements of a string tensor, else null.</param>
public sealed record BatchOutput(string Name, TensorElementType ElementType, long[] Shape, ReadOnlyMemory<byte> Data, IReadOnlyList<string>? Strings);

/// <summary>A request to a <see cref="ModelBatcher"/>.</summary>
/// <param name="Inputs">Every model input once.</param>
/// <param name="Outputs">Outputs wanted; null or empty for all, in model order.</param>
/// <param name="Deadline">The request is dropped instead of run once this passes; null for none.</param>
public sealed record InferenceWork(IReadOnlyList<BatchInput> Inputs, IReadOnlyList<string>? Outputs = null, DateTimeOffset? Deadline = null);

/// <summary>
/// Requests of one caller (a worker call carrying several) that agree on everything but their rows: the same inputs with
/// the same element types and trailing dimensions, the same outputs. They queue as one entry, run in one batch and
/// complete together, their rows are copied into the batch once, and each gets its own rows of the outputs back;
/// statistics and metrics count each request.
/// </summary>
/// <param name="Parts">Each request's inputs (every model input once); at most a batch of rows in all.</param>
/// <param name="Outputs">Outputs wanted by all of them; null or empty for all, in model order.</param>
/// <param name="Deadline">The entry is dropped instead of run once this passes; null for none.</param>
public sealed record InferenceWorkGroup(IReadOnlyList<IReadOnlyList<BatchInput>> Parts, IReadOnlyList<string>? Outputs = null, DateTimeOffset? Deadline = null);

/// <summary>The result of one request.</summary>
/// <param name="Outputs">Requested outputs in the requested order (model order when all).</param>
/// <param name="BatchRows">Rows of the batch this request ran in.</param>
/// <param name="BatchRequests">Requests in that batch.</param>
/// <param name="QueueTime">Time between enqueue and the batch starting.</param>
/// <param name="ComputeTime">Duration of the ONNX Runtime run of the batch.</param>
public sealed record InferenceOutcome(IReadOnlyList<BatchOutput> Outputs, int BatchRows, int BatchRequests, TimeSpan QueueTime, TimeSpan ComputeTime);

/// <summary>The request does not fit the model (HTTP 400); the message names the input and what is wrong.</summary>
public sealed class InvalidInferenceRequestException(string message) : Exception(message);

/// <summary>The queue of the model version is full (HTTP 429); retry after <see cref="RetryAfter"/>.</summary>
public sealed class QueueFullException(string model, long version, int capacity, TimeSpan retryAfter)
    : Exception($"The queue of model '{model}' version {version} is full ({capacity} requests waiting); retry later.")
{
    /// <summary>Suggested wait before retrying.</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>The request's deadline passed before it could run (HTTP 504); it was not run.</summary>
public sealed class DeadlineExceededException(string message) : Exception(message);

/// <summary>The batcher is stopping (model version unloading or shutdown); retry on another replica or version (HTTP 503).</summary>
public sealed class BatcherStoppedException(string message) : Exception(message);
