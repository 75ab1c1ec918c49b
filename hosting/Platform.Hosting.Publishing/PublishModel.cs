using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Publishing;

/// <summary>Reads what the model says about a resource in publish mode: environment, arguments, secrets.</summary>
public static class PublishModel
{
    /// <summary>
    /// The resource's environment as its callbacks write it in publish mode, in the order they write it
    /// (values stay unevaluated: strings, parameters, endpoint references, expressions).
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, object>> GetEnvironment(IResource resource, DistributedApplicationExecutionContext executionContext)
    {
        var context = new EnvironmentCallbackContext(executionContext);
        foreach (var callback in resource.OfAnnotation<EnvironmentCallbackAnnotation>())
        {
            callback.Callback(context);
        }

        return context.EnvironmentVariables.ToList();
    }

    /// <summary>The resource's command-line arguments, unevaluated.</summary>
    public static IReadOnlyList<object> GetArgs(IResource resource)
    {
        var args = new List<object>();
        foreach (var callback in resource.OfAnnotation<CommandLineArgsCallbackAnnotation>())
        {
            callback.Callback(args);
        }

        return args;
    }

    /// <summary>Secret parameters a value contains, in first-use order (a value may nest expressions and connection strings).</summary>
    public static IReadOnlyList<ParameterResource> SecretsIn(object value)
    {
        var found = new List<ParameterResource>();
        Collect(value, found);
        return found;

        static void Collect(object value, List<ParameterResource> found)
        {
            switch (value)
            {
                case ParameterResource { Secret: true } p when !found.Contains(p):
                    found.Add(p);
                    break;
                case ReferenceExpression e:
                    foreach (var provider in e.ValueProviders)
                    {
                        Collect(provider, found);
                    }

                    break;
                case IResourceWithConnectionString c:
                    Collect(c.ConnectionStringExpression, found);
                    break;
                case IResourceBuilder<IResource> b:
                    Collect(b.Resource, found);
                    break;
            }
        }
    }

    /// <summary>
    /// The resource a reference points at for networking: a database resolves to its server, a
    /// connection string or parameter to nothing (it is configuration, not a network peer).
    /// </summary>
    public static IResourceWithEndpoints? NetworkPeer(IResource resource) => resource switch
    {
        IResourceWithEndpoints e => e,
        IResourceWithParent { Parent: var parent } => NetworkPeer(parent),
        _ => null,
    };
}
