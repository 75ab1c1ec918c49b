using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting;

/// <summary>Checks a model before it runs or is published, naming the resource at fault.</summary>
public static class DistributedApplicationModelValidator
{
    /// <summary>Throws when a resource refers to one outside the model, or when waits form a cycle.</summary>
    public static void Validate(IResourceCollection resources)
    {
        var names = new HashSet<IResource>(resources);
        foreach (var resource in resources)
        {
            foreach (var dependency in Dependencies(resource))
            {
                if (!names.Contains(dependency.Resource))
                {
                    throw new DistributedApplicationException(
                        $"Resource '{resource.Name}' has a {dependency.Kind} to '{dependency.Resource.Name}', which is not part of this application. Add it to the builder first.");
                }
            }
        }

        // Waits (and parent links, which are implicit waits) must be acyclic or nothing would start.
        var state = new Dictionary<IResource, int>();
        var path = new Stack<IResource>();
        foreach (var resource in resources)
        {
            Visit(resource);
        }

        void Visit(IResource r)
        {
            if (state.GetValueOrDefault(r) == 2)
            {
                return;
            }

            if (state.GetValueOrDefault(r) == 1)
            {
                var cycle = path.Reverse().SkipWhile(p => p != r).Append(r).Select(p => p.Name);
                throw new DistributedApplicationException(
                    $"Resource '{r.Name}' waits for itself through a cycle: {string.Join(" -> ", cycle)}. Remove one of these WaitFor calls.");
            }

            state[r] = 1;
            path.Push(r);
            foreach (var next in WaitTargets(r))
            {
                Visit(next);
            }

            path.Pop();
            state[r] = 2;
        }
    }

    private static IEnumerable<IResource> WaitTargets(IResource r) =>
        r.OfAnnotation<WaitAnnotation>().Select(w => w.Resource)
            .Concat(r is IResourceWithParent p ? [p.Parent] : []);

    private static IEnumerable<(IResource Resource, string Kind)> Dependencies(IResource r) =>
        r.OfAnnotation<WaitAnnotation>().Select(w => (w.Resource, "WaitFor"))
            .Concat(r.OfAnnotation<ResourceRelationshipAnnotation>().Select(a => (a.Resource, a.Type == "Reference" ? "reference" : a.Type)))
            .Concat(r is IResourceWithParent p ? [(p.Parent, "parent")] : []);
}
