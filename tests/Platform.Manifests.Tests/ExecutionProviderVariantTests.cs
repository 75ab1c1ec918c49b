using System.Text.Json.Nodes;

namespace Platform.Manifests.Tests;

/// <summary>
/// The model workers' GPU and CPU variants: prod (and staging) include manifests/components/gpu, a cluster without GPUs
/// uses manifests/overlays/prod-cpu (prod plus manifests/components/cpu-workers).
/// </summary>
public sealed class ExecutionProviderVariantTests(PublishFixture fixture)
{
    [Theory]
    [InlineData("prod")]
    [InlineData("staging")]
    public void Gpu_workers_own_one_gpu_run_on_gpu_nodes_and_require_cuda(string overlay)
    {
        var (spec, container) = Worker(overlay);
        var f = new List<string>();
        foreach (var kind in new[] { "requests", "limits" })
        {
            if ((string?)container["resources"]?[kind]?["nvidia.com/gpu"] != "1") f.Add($"resources.{kind}.nvidia.com/gpu must be \"1\"");
        }
        if (!(spec["tolerations"]?.AsArray() ?? []).Any(t => (string?)t!["key"] == "nvidia.com/gpu" && (string?)t["effect"] == "NoSchedule"))
        {
            f.Add("tolerations must tolerate nvidia.com/gpu:NoSchedule");
        }
        if ((string?)spec["nodeSelector"]?["nvidia.com/gpu.present"] != "true") f.Add("nodeSelector must select nvidia.com/gpu.present=true");
        if (ExecutionProvider(container) != "cuda") f.Add($"ModelWorker__ExecutionProvider must be cuda, is '{ExecutionProvider(container)}'");
        if (container["startupProbe"]?["httpGet"]?["path"] is null) f.Add("a startup probe must cover model loading");
        Assert.True(f.Count == 0, $"{overlay} Deployment/model-worker:\n" + string.Join('\n', f));
    }

    [Fact]
    public void Cpu_workers_ask_for_no_gpu_and_run_anywhere_on_the_cpu()
    {
        var (spec, container) = Worker("prod-cpu");
        var f = new List<string>();
        foreach (var kind in new[] { "requests", "limits" })
        {
            if (container["resources"]?[kind]?["nvidia.com/gpu"] is not null) f.Add($"resources.{kind}.nvidia.com/gpu must not be set");
        }
        if ((container["resources"]?["requests"]?["cpu"]) is null || container["resources"]?["limits"]?["memory"] is null)
        {
            f.Add("CPU request and memory limit must stay");
        }
        if ((spec["tolerations"]?.AsArray() ?? []).Any(t => (string?)t!["key"] == "nvidia.com/gpu")) f.Add("no nvidia.com/gpu toleration");
        if (spec["nodeSelector"]?["nvidia.com/gpu.present"] is not null) f.Add("no GPU node selector");
        if (ExecutionProvider(container) != "cpu") f.Add($"ModelWorker__ExecutionProvider must be cpu, is '{ExecutionProvider(container)}'");
        if (container["startupProbe"]?["httpGet"]?["path"] is null) f.Add("a startup probe must cover model loading");
        Assert.True(f.Count == 0, "prod-cpu Deployment/model-worker:\n" + string.Join('\n', f));
    }

    [Fact]
    public void Prod_cpu_is_prod_except_the_model_workers_pod()
    {
        var prod = fixture.Render("prod");
        var cpu = fixture.Render("prod-cpu");
        Assert.Equal(0, cpu.ExitCode);
        Assert.Equal(prod.Objects.Select(Rendered.Id).Order(), cpu.Objects.Select(Rendered.Id).Order());
        var differing = prod.Objects
            .Where(p => !JsonNode.DeepEquals(p, cpu.Objects.Single(c => Rendered.Id(c) == Rendered.Id(p))))
            .Select(Rendered.Id)
            .ToArray();
        Assert.Equal(["Deployment/model-worker"], differing);
    }

    private (JsonObject Spec, JsonObject Container) Worker(string overlay)
    {
        var render = fixture.Render(overlay);
        Assert.True(render.ExitCode == 0, $"kubectl kustomize manifests/overlays/{overlay} failed:\n{render.Error}");
        var spec = render.OfKind("Deployment").Single(d => (string?)d["metadata"]!["name"] == "model-worker")["spec"]!["template"]!["spec"]!.AsObject();
        var container = spec["containers"]!.AsArray().Single(c => (string?)c!["name"] == "model-worker")!.AsObject();
        return (spec, container);
    }

    private static string? ExecutionProvider(JsonObject container) =>
        (string?)(container["env"]?.AsArray() ?? []).SingleOrDefault(e => (string?)e!["name"] == "ModelWorker__ExecutionProvider")?["value"];
}
