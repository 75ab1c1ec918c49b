namespace Platform.Manifests.Tests;

/// <summary>The committed aspirate-output/ is exactly what the AppHost generates today.</summary>
public sealed class DriftTests(PublishFixture fixture)
{
    [Fact]
    public void Committed_aspirate_output_matches_a_fresh_generation()
    {
        var committed = Files(fixture.CommittedDirectory);
        var generated = Files(fixture.GeneratedDirectory);
        var problems = new List<string>();
        problems.AddRange(generated.Keys.Except(committed.Keys).Select(f => $"missing from aspirate-output/: {f}"));
        problems.AddRange(committed.Keys.Except(generated.Keys).Select(f => $"no longer generated: {f}"));
        problems.AddRange(generated.Keys.Intersect(committed.Keys).Where(f => generated[f] != committed[f]).Select(f => $"differs: {f}"));
        Assert.True(problems.Count == 0,
            "aspirate-output/ drifted from the AppHost model. Regenerate it with\n" +
            "  dotnet run --project AppHost -- --publisher kubernetes --output-path aspirate-output\n" +
            string.Join('\n', problems.Order()));
    }

    [Fact]
    public void Generation_is_deterministic()
    {
        // Two independent AppHost runs (manifest, kubernetes) already happened; a model with
        // unordered parts would show up as drift above, so here check the output is LF-only UTF-8 text.
        foreach (var (file, text) in Files(fixture.GeneratedDirectory))
        {
            Assert.DoesNotContain('\r', text);
            Assert.StartsWith("# Generated from the AppHost model", text);
            Assert.True(text.EndsWith('\n'), $"{file} must end with a newline");
        }
    }

    private static Dictionary<string, string> Files(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllText);
}
